"""Benchmarks: each prints rates and their ratio to a baseline measured in the same run."""
