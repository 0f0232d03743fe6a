"""Benchmarks for taskrunner (not part of the package)."""
