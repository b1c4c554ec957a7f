"""Benchmarks: each module measures side by side in one run and writes a table."""
