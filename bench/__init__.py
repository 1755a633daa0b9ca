"""Benchmarks of pollable: the hot path against a bare Starlette ceiling, and file paging.

Run from the repository root: ``python -m bench.hot_path`` and ``python -m bench.paging``.
See bench/README.md.
"""
