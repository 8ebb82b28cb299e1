"""Benchmarks: ratios and counts measured in one run on one server (see README)."""
