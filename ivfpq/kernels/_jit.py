"""Copies of kernel templates under names of their own, for Numba's on-disk cache, and
the serial twins of parallel kernels.

Numba names a cached function's files by its qualified name: two compilations of one
Python function with different options (parallel and serial, or two bound distances)
would overwrite each other's cache. A copy with its own ``__qualname__`` has files of
its own.

A parallel region wakes every worker thread, which costs more than a search of a few
queries; :func:`for_queries` picks a kernel's serial twin below :data:`SERIAL_BELOW`
queries. A twin computes exactly what its kernel computes.
"""

from __future__ import annotations

import types

from llvmlite import ir
from numba import njit, types as nbtypes
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["SERIAL_BELOW", "copy_function", "serial_twin", "for_queries", "prefetch_row"]

# Searches of fewer queries than this run on the calling thread.
SERIAL_BELOW = 32

_TWINS = {}


def copy_function(template, scope, name, qualname):
    """``template`` (a plain Python function) with globals ``scope``, named ``name``."""
    fn = types.FunctionType(template.__code__, scope, name, template.__defaults__)
    fn.__qualname__ = qualname
    fn.__doc__ = template.__doc__
    return fn


def serial_twin(kernel, **options):
    """``kernel`` (a parallel Numba dispatcher) compiled to run on the calling thread
    only, as ``<name>_serial`` (same globals), and registered for :func:`for_queries`."""
    template = kernel.py_func
    name = template.__name__ + "_serial"
    fn = copy_function(template, template.__globals__, name, template.__qualname__ + "_serial")
    twin = njit(cache=True, **options)(fn)
    _TWINS[kernel] = twin
    return twin


def for_queries(kernel, n_queries):
    """``kernel``, or its serial twin when there are fewer than ``SERIAL_BELOW`` queries."""
    return _TWINS[kernel] if n_queries < SERIAL_BELOW else kernel


@intrinsic
def prefetch_row(typingctx, array, row):
    """Ask the CPU to start loading ``array[row]`` (a C-contiguous 2-D array) into its
    caches, and go on: a graph search knows which rows it will read a few distance
    computations before it reads them. A hint only; no value changes."""
    if not (isinstance(array, nbtypes.Array) and array.ndim == 2 and isinstance(row, nbtypes.Integer)):
        return None

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        index = context.cast(builder, args[1], signature.args[1], nbtypes.intp)
        start = cgutils.get_item_pointer(context, builder, array_type, view,
                                         [index, context.get_constant(nbtypes.intp, 0)], wraparound=False)
        byte_pointer = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        hint = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]), "llvm.prefetch.p0i8")
        # read (0), keep in every cache level (3), data (1)
        builder.call(hint, [builder.bitcast(start, byte_pointer), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return nbtypes.void(array, row), codegen
