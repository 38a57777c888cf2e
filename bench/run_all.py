"""Run every benchmark, one after the other, each as `python -m bench.<name>`.

    python -m bench.run_all                 # all of them, default sizes (= make bench)
    python -m bench.run_all relay upload    # only the named ones
    python -m bench.run_all --quick         # smallest sizes: a smoke run of each

Each script prints its own summary and writes its JSON under bench/out/. Exits non-zero
if a benchmark failed to run (missing its target is reported, not a failure).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCHMARKS = ("health_sweep", "marketplace", "relay", "resolver", "upload")
ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    options = [a for a in argv if a.startswith("-")]
    names = [a for a in argv if not a.startswith("-")] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        print(f"no such benchmark: {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    results = []
    for name in names:
        print(f"=== {name} ===", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, "-m", f"bench.{name}", *options], cwd=ROOT)
        results.append((name, code, time.perf_counter() - started))
    print("\n=== summary ===")
    for name, code, seconds in results:
        print(f"  {name:<20}{'ok' if code == 0 else f'FAILED (exit {code})':<20}{seconds:>8.1f} s")
    return 1 if any(code for _name, code, _s in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
