"""Run every benchmark in bench/ with its default arguments, one after the other.

    .venv/bin/python bench/run_all.py            # all of them
    .venv/bin/python bench/run_all.py relay      # only the named ones
    .venv/bin/python bench/run_all.py upload     # (bench/upload.py; its gunicorn app,
                                                 # bench/_upload_app.py, is skipped)
    .venv/bin/python bench/run_all.py resolver   # install plans on a synthetic registry
                                                 # of 2,000 names (bench/resolver.py)

Each script prints its own summary and writes its JSON under bench/out/. Exits non-zero
if any benchmark failed to run (missing its target is reported, not a failure).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def benchmarks() -> list[Path]:
    """Every bench/*.py but this runner and private helpers (a leading underscore)."""
    this = Path(__file__).name
    return sorted(p for p in BENCH.glob("*.py") if p.name != this and not p.name.startswith("_"))


def main(argv: list[str]) -> int:
    scripts = benchmarks()
    if argv:
        scripts = [p for p in scripts if p.stem in argv]
        missing = set(argv) - {p.stem for p in scripts}
        if missing:
            print(f"no such benchmark: {', '.join(sorted(missing))}", file=sys.stderr)
            return 2
    results = []
    for script in scripts:
        print(f"=== {script.stem} ===", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(script)], cwd=BENCH.parent)
        results.append((script.stem, code, time.perf_counter() - started))
    print("\n=== summary ===")
    for name, code, seconds in results:
        print(f"  {name:<20}{'ok' if code == 0 else f'FAILED (exit {code})':<20}{seconds:>8.1f} s")
    return 1 if any(code for _name, code, _s in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
