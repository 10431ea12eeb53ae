"""Benchmarks: each prints a figure, a baseline measured in the same run, and their ratio."""
