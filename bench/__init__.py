"""Benchmarks (`make bench`): speed and memory targets, measured here rather than asserted in tests."""
