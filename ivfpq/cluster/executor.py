"""Executors: where the blocks of rows of a fit live, and how a function reaches them.

The Lloyd loop (:mod:`ivfpq.cluster.lloyd`) and the initialisations
(:mod:`ivfpq.cluster.init`) are written once, against this small protocol:

``put(value)``
    a handle to a value that tasks will read (the value itself here);
``submit(fn, *args, heavy=False)``
    ``fn(*args)`` as one task; a block-data handle in ``args`` is read for it;
``map(fn, *per_block, shared=(), data=True)``
    ``fn(block_data, per_block[0][b], ..., *shared)`` for every block ``b``;
``map_reduce(fn, combine, *per_block, shared=(), data=True, outputs=True)``
    the same, where ``fn`` returns ``(output, partial)`` (or only the partial with
    ``outputs=False``) and the partials are combined with ``combine`` (a pure
    function; :class:`LocalBlocks` folds :func:`add_partials` into a running total
    of its own, in place, so that a (k, d) total is not copied once per block);
``gather(handles)``, ``keep(handle)``, ``drop_kept()``, ``labels(states)``;
``offsets``, ``n_blocks``, ``n_rows``, ``n_features``, ``dtype``, ``data``, ``remote``.

A handle is the value itself in :class:`LocalBlocks`; a Dask future in
:class:`ivfpq.cluster.dask_blocks.DaskBlocks`. Functions called through an executor must
not modify their arguments when ``remote`` is true (a task may run again from the
same inputs after a worker is lost). Every partial the loop combines is made of
integers (see :mod:`ivfpq.kernels.lloyd`), so the order of combination never
changes a result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_block, check_block_weights, check_lazy_array, check_positive_int, check_sample_weight
from ..kernels.distances import sq_norms
from ..kernels.lloyd import finite_max_abs

__all__ = ["Block", "LocalBlocks", "RowChanges", "add_partials", "local_executor", "tree_reduce",
           "default_block_rows", "DEFAULT_BLOCK_BYTES"]

#: Bytes of data per block when reading an out-of-core array (``block_rows=None``).
DEFAULT_BLOCK_BYTES = 64 << 20


def default_block_rows(n_features, itemsize):
    """Rows of a block of ``DEFAULT_BLOCK_BYTES``."""
    return max(1, DEFAULT_BLOCK_BYTES // max(1, n_features * itemsize))


def tree_reduce(items, combine):
    """Combine ``items`` pairwise, level by level: ((0, 1), (2, 3)), ... in index order.

    The depth is log2(len(items)), so a remote reduction runs its combinations in
    parallel. An odd item at the end of a level moves up unchanged.
    """
    items = list(items)
    if not items:
        raise ValueError("tree_reduce needs at least one item")
    while len(items) > 1:
        paired = [combine(items[i], items[i + 1]) for i in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            paired.append(items[-1])
        items = paired
    return items[0]


class RowChanges:
    """Changes to some rows of an (n_rows, d) int64 array: row ``ids[i]`` changes by
    ``values[i]`` (``ids`` sorted and unique).

    A block in which few points change cluster touches few of the k rows of the
    cluster sums; this is its partial, in O(touched * d) memory instead of O(k * d).
    ``dense + changes`` (either order) gives a new dense array, ``changes + changes``
    their union; :meth:`add_to` changes a dense array in place. Integer sums: every
    order of combination gives the same result.
    """

    __array_ufunc__ = None  # ``ndarray + RowChanges`` is RowChanges.__radd__

    def __init__(self, ids, values, n_rows):
        self.ids = ids
        self.values = values
        self.n_rows = int(n_rows)

    def add_to(self, dense):
        dense[self.ids] += self.values
        return dense

    def __add__(self, other):
        if isinstance(other, RowChanges):
            ids = np.union1d(self.ids, other.ids)
            values = np.zeros((ids.size, self.values.shape[1]), dtype=self.values.dtype)
            values[np.searchsorted(ids, self.ids)] += self.values
            values[np.searchsorted(ids, other.ids)] += other.values
            return RowChanges(ids, values, self.n_rows)
        return self.add_to(np.array(other, copy=True))

    __radd__ = __add__

    def dense(self):
        return self.add_to(np.zeros((self.n_rows, self.values.shape[1]), dtype=self.values.dtype))


def add_partials(a, b):
    """Element-wise sum of two partials (tuples of arrays, :class:`RowChanges` and
    numbers; None stays None)."""
    return tuple(None if x is None else x + y for x, y in zip(a, b))


def _add_partials_into(total, b):
    """:func:`add_partials` into ``total``, whose arrays nothing else holds (see
    :func:`_owned`)."""
    out = []
    for x, y in zip(total, b):
        if not isinstance(x, np.ndarray):
            out.append(None if x is None else x + y)
        elif isinstance(y, RowChanges):
            out.append(y.add_to(x))
        else:
            x += y
            out.append(x)
    return tuple(out)


def _owned(partial):
    """A copy of ``partial`` that a fold may change in place (its RowChanges dense)."""
    return tuple(x.dense() if isinstance(x, RowChanges) else
                 np.array(x, copy=True) if isinstance(x, np.ndarray) else x for x in partial)


@dataclass
class Block:
    """What a block keeps for the whole fit: where its rows start and their weights."""

    offset: int
    weights: np.ndarray  # float64, one per row


def normalize_rows(x):
    """Rows scaled to unit L2 norm (rows of zero norm are left as they are)."""
    norms = np.sqrt(sq_norms(x).astype(np.float64))
    out = np.array(x, copy=True)
    nonzero = norms > 0
    out[nonzero] /= norms[nonzero, None].astype(x.dtype)
    return out


def check_data_block(x, w, offset, dtype, cosine, name="X"):
    """Validate one raw block of rows.

    Returns ``(Block, loop data, statistics)``: the data the loop sees (rows
    normalised for the cosine metric) and ``(rows, max |x_j| per feature, max weight)``
    of it, which combine across blocks by :func:`combine_block_stats` in any order.
    """
    x = np.ascontiguousarray(x, dtype=dtype)
    finite, max_abs = finite_max_abs(x) if x.size else (True, np.zeros(x.shape[1]))
    if not finite:
        check_block(x, dtype, offset, name)  # raises, naming the first bad row
    weights = check_block_weights(w, x.shape[0], offset)
    if cosine and x.shape[0]:
        zero = np.flatnonzero(sq_norms(x) == 0)
        if zero.size:
            raise ValueError(
                f"{name} has {zero.size} rows of zero norm in the block starting at row {offset} "
                f"(first at row {offset + int(zero[0])}); the cosine metric needs every row to "
                "have a direction"
            )
    data = x
    if cosine:
        data = normalize_rows(x)
        max_abs = finite_max_abs(data)[1] if data.size else max_abs
    max_weight = float(weights.max()) if data.shape[0] else 0.0
    return Block(offset, weights), data, (data.shape[0], max_abs, max_weight)


def combine_block_stats(a, b):
    """The statistics of two blocks together (order-free: counts and maxima)."""
    return (a[0] + b[0], np.maximum(a[1], b[1]), max(a[2], b[2]))


class _BlockIndex(int):
    """A block's data handle in :class:`LocalBlocks`: a task that gets it reads the block."""


class LocalBlocks:
    """Blocks of rows in this process: slices of an in-memory array, or of an
    ``np.memmap`` / any row-sliceable array read one block at a time.

    ``read(start, stop)`` returns rows ``start:stop`` of the data. With ``cache``
    (in-memory data), each checked block is kept, so the rows are validated and, for
    the cosine metric, normalised once; otherwise every pass reads its blocks again,
    and the data is never whole in memory.
    """

    remote = False  # tasks run here, on arguments nothing else will read again

    def __init__(self, read, bounds, n_features, dtype, weights=None, cosine=False, name="X",
                 cache=False):
        self._read = read
        self.offsets = [int(b) for b in bounds]
        self.n_blocks = len(self.offsets) - 1
        self.n_rows = self.offsets[-1]
        self.n_features = int(n_features)
        self.dtype = np.dtype(dtype)
        self._weights = weights
        self._cosine = cosine
        self._name = name
        self._cache = {} if cache else None
        self._validated = set()
        self.data = [_BlockIndex(b) for b in range(self.n_blocks)]

    def _checked(self, b):
        if self._cache is not None and b in self._cache:
            return self._cache[b]
        start, stop = self.offsets[b], self.offsets[b + 1]
        w = None if self._weights is None else self._weights[start:stop]
        checked = check_data_block(self._read(start, stop), w, start, self.dtype, self._cosine, self._name)
        if self._cache is not None:
            self._cache[b] = checked
        else:
            self._validated.add(b)
        return checked

    def _block(self, b):
        if self._cache is None and b in self._validated:
            # Checked on the first pass (validation happens once): later passes only
            # read and convert the rows.
            x = np.ascontiguousarray(self._read(self.offsets[b], self.offsets[b + 1]), dtype=self.dtype)
            return normalize_rows(x) if self._cosine else x
        return self._checked(b)[1]

    def validate(self):
        """Check every block; returns (block handles, combined statistics)."""
        blocks, stats = [], None
        for b in range(self.n_blocks):
            block, _, block_stats = self._checked(b)
            blocks.append(block)
            stats = block_stats if stats is None else combine_block_stats(stats, block_stats)
        return blocks, stats

    def put(self, value):
        return value

    def keep(self, handle):
        pass

    def drop_kept(self):
        pass

    def gather(self, handles):
        return handles

    def submit(self, fn, *args, heavy=False):
        args = [self._block(a) if isinstance(a, _BlockIndex) else a for a in args]
        return fn(*args)

    def map(self, fn, *per_block, shared=(), data=True, name=None):
        return [fn(*((self._block(b),) if data else ()), *(p[b] for p in per_block), *shared)
                for b in range(self.n_blocks)]

    def map_reduce(self, fn, combine, *per_block, shared=(), data=True, name=None, outputs=True):
        out, total = [], None
        in_place = combine is add_partials
        for b in range(self.n_blocks):
            result = fn(*((self._block(b),) if data else ()), *(p[b] for p in per_block), *shared)
            partial = result[1] if outputs else result
            if outputs:
                out.append(result[0])
            if total is None:
                total = _owned(partial) if in_place else partial
            elif in_place:
                total = _add_partials_into(total, partial)
            else:
                total = combine(total, partial)
        return (out, total) if outputs else total

    def labels(self, states):
        return np.concatenate([s.labels for s in states])


def local_executor(X, sample_weight, block_rows, cosine, name="X"):
    """A :class:`LocalBlocks` over an in-memory array or an ``np.memmap``.

    An in-memory array of float32 or float64 is one block unless ``block_rows`` is
    given, and its checked blocks are kept. A memory-map, or an array of a compact type
    (uint8, float16, ...: see :func:`ivfpq._validation.float_dtype_for`), is read in
    blocks of ``block_rows`` rows (default: about ``DEFAULT_BLOCK_BYTES`` of float
    rows), each converted when it is read: the data is never whole in memory as floats.
    """
    dtype = check_lazy_array(X, name)
    in_memory = not isinstance(X, np.memmap) and np.dtype(X.dtype) == dtype
    n = X.shape[0]
    if block_rows is None:
        block_rows = n if in_memory else default_block_rows(X.shape[1], dtype.itemsize)
    block_rows = check_positive_int(block_rows, "block_rows")
    weights = None if sample_weight is None else check_sample_weight(sample_weight, n)
    bounds = list(range(0, n, block_rows)) + [n]
    return LocalBlocks(lambda start, stop: X[start:stop], bounds, X.shape[1], dtype, weights, cosine,
                       name, cache=in_memory)


def _take_rows(x, block, rows):
    return x[np.asarray(rows, dtype=np.int64) - block.offset]


def gather_rows(ex, blocks, rows):
    """The loop-data rows with global indices ``rows`` (any order), as one array."""
    rows = np.asarray(rows, dtype=np.int64)
    owner = block_of_rows(ex, rows)
    out = np.empty((rows.size, ex.n_features), dtype=ex.dtype)
    wanted = [rows[owner == b] for b in range(ex.n_blocks)]
    picked = [b for b in range(ex.n_blocks) if wanted[b].size]
    handles = [ex.submit(_take_rows, ex.data[b], blocks[b], wanted[b]) for b in picked]
    for b, values in zip(picked, ex.gather(handles)):
        out[owner == b] = values
    return out


def block_of_rows(ex, rows):
    """The index of the block holding each global row (empty blocks hold none)."""
    starts = np.asarray(ex.offsets[:-1])
    # Empty blocks share their offset with the next block; searchsorted picks the last
    # of them, which is the one holding the row.
    return np.searchsorted(starts, np.asarray(rows, dtype=np.int64), side="right") - 1
