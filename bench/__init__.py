"""Benchmarks for csaudit (issue 8): the probe engine against nmap, filtered ports, discovery at scale.

Run them with `bench/run` (see bench/README.md). The helpers here are also used by
tests/test_bench_correctness.py, which keeps small versions as correctness checks.

Network safety: traffic goes only to 127.0.0.0/8, or to addresses inside a network namespace
the benchmark itself creates and removes (bench.netns).
"""
