"""Benchmarks: what the process split costs, measured side by side (``python -m bench``)."""
