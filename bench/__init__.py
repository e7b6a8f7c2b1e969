"""pynetdrv benchmarks: ``python3 -m bench [--quick] [--only NAME ...]`` (see docs/benchmarks.md).

Figures only, never pass/fail tests: each comparison is a ratio of medians measured in the same
run with the two sides interleaved (A B A B ...), reported with min-max, because the machines
are noisy.
"""
