"""Benchmarks: one script per figure; `make bench [SCALE=full]` runs them all. Results: BENCHMARKS.md."""
