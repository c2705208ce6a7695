"""Benchmarks of Attain, each runnable with `python -m bench.<name>` from the repository root."""
