"""Benchmarks: each measures a figure and a baseline in the same run and reports their ratio.

``python -m bench`` (``make bench``) runs them all and writes bench/results.json."""
