"""The chaos suite: `python -m benchmarks.chaos` (see benchmarks/README.md)."""
