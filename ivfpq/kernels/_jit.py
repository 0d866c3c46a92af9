"""Copies of kernel templates under names of their own, for Numba's on-disk cache.

Numba names a cached function's files by its qualified name: two compilations of one
Python function with different options (parallel and serial, or two bound distances)
would overwrite each other's cache. A copy with its own ``__qualname__`` has files of
its own.
"""

from __future__ import annotations

import types

from numba import njit

__all__ = ["copy_function", "serial_twin"]


def copy_function(template, scope, name, qualname):
    """``template`` (a plain Python function) with globals ``scope``, named ``name``."""
    fn = types.FunctionType(template.__code__, scope, name, template.__defaults__)
    fn.__qualname__ = qualname
    fn.__doc__ = template.__doc__
    return fn


def serial_twin(kernel, **options):
    """``kernel`` (a parallel Numba dispatcher) compiled to run on the calling thread
    only, as ``<name>_serial``: a parallel region wakes every worker thread, which can
    cost as much as the work of one query."""
    template = kernel.py_func
    name = template.__name__ + "_serial"
    fn = copy_function(template, template.__globals__, name, template.__qualname__ + "_serial")
    return njit(cache=True, **options)(fn)
