"""Benchmarks against the peers. Run everything with ``python -m bench``."""
