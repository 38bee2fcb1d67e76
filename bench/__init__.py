"""Benchmarks against the local emulators: ``python -m bench.<name>``."""
