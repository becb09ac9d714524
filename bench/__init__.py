"""waauth's benchmarks: run ``python -m bench`` (see docs/benchmarks.md)."""
