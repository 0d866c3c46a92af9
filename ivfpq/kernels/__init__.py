"""Numba kernels: flat arrays in, flat arrays out; no validation, no I/O.

Importing this package compiles nothing: every kernel is compiled on first call and
cached on disk (``cache=True``).
"""
