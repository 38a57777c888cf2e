"""Benchmarks of the registry against same-run baselines; see bench/README.md.

Run one as a module from the repository root (`python -m bench.relay --quick`), or all
of them with `make bench` (`python -m bench.run_all`). Shared pieces: bench/harness.py.
"""
