"""Benchmarks: the code beside the results it writes."""
