"""Throughput, latency and scale benchmarks (`make bench`); results in RESULTS.md."""
