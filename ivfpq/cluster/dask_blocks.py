"""The Dask executor: the one Lloyd loop with the chunks of a Dask array as blocks.

``KMeans.fit(X)`` with a ``dask.array.Array`` runs on :class:`DaskBlocks`. With a
``distributed.Client`` active (``Client("tcp://scheduler:8786")`` or a
``LocalCluster``), each row chunk of ``X`` is one block and stays on a worker; every
iteration

1. builds the assigner for the current centroids once (for the graph assigner: the
   HNSW graph over the centroids), in one task, and lets each worker fetch it;
2. runs one task per chunk, on the worker holding it: assign the chunk's rows with the
   same assigner as in memory, its per-point state (labels, distances, the assigner's
   memory) read from and written back to that worker, and reduce the chunk to
   per-cluster float64 sums and counts (``kernels.lloyd.cluster_sums``), inertia and
   the number of changed labels;
3. adds the (integer) partials in a binary tree over the chunk index and computes the
   new centroids in a task;
4. brings back to the client only a few numbers (inertia, changed labels, converged).

Everything is a task with its inputs as dependencies, so Dask recomputes what a lost
worker held: its chunks from the graph of ``X``, and its per-point states by replaying
that worker's chunks through the iterations. The centroids (and prepared assigner)
of every iteration of the current run stay referenced for that: about
``n_clusters * n_features * itemsize`` bytes per iteration, plus the graph for mop,
kept on the workers (and spilled to disk by Dask under memory pressure).

Without a client, a Dask array is read chunk by chunk in this process (each chunk is
computed again at every pass: persist ``X`` first if it fits in memory).

``import ivfpq`` does not import Dask: this module imports it only when a Dask array
is passed.
"""

from __future__ import annotations

import operator
import os
import threading
import uuid

import numpy as np

from .._threads import resolve_n_threads, thread_limits
from .._validation import check_lazy_array, check_positive_int
from .executor import LocalBlocks, check_data_block, combine_block_stats, tree_reduce

__all__ = ["DaskBlocks", "dask_executor", "is_dask_array"]


def is_dask_array(X):
    """True for a ``dask.array.Array``, without importing Dask."""
    return type(X).__name__ == "Array" and type(X).__module__.startswith("dask.array")


def _current_client():
    """The active ``distributed.Client`` (``as_current`` first, then the default), or None."""
    try:
        from distributed import Client
    except ImportError:
        return None
    try:
        return Client.current()
    except ValueError:
        return None


# ----------------------------------------------------------------------------- worker side


def _threads_here(threads):
    """An explicit thread count, or this worker's share of its host's cores."""
    if isinstance(threads, int):
        return threads
    from distributed import get_worker
    from distributed.comm import get_address_host

    worker = get_worker()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers_here = threads.get(get_address_host(worker.address), 1)
    return max(1, cores // max(1, workers_here))


# One kernel task at a time per worker process: each already runs on the worker's
# share of the cores, and the prepared assigner (the mop graph's search scratch) is
# shared by the tasks of a process. Light tasks (picking items, adding partials) are
# not held back.
_KERNEL_LOCK = threading.Lock()


def _run(fn, threads, *args):
    """A task body: ``fn(*args)`` with this worker's kernel threads, one at a time."""
    with _KERNEL_LOCK, thread_limits(resolve_n_threads(_threads_here(threads))):
        return fn(*args)


def _identity(value):
    return value


# ----------------------------------------------------------------------------- executor


class DaskBlocks:
    """The executor of :mod:`ivfpq.cluster.executor` on a Dask cluster.

    Each row chunk of ``X`` is a block; each handle is a ``distributed.Future``.
    Per-block tasks are placed on the worker that holds the chunk (a loose
    restriction: if that worker is gone, Dask runs them elsewhere).
    """

    remote = True  # arguments may be shared with other tasks or recomputed: copy, never modify

    def __init__(self, client, X, weights, dtype, cosine, n_threads=None, name="X"):
        self.client = client
        rows = [int(c) for c in X.chunks[0]]
        self.offsets = [0] + list(np.cumsum(rows, dtype=np.int64).tolist())
        self.n_blocks = len(rows)
        self.n_rows = self.offsets[-1]
        self.n_features = int(X.shape[1])
        self.dtype = np.dtype(dtype)
        self._chunk_rows = tuple(rows)
        self._cosine = cosine
        self._name = name
        self._prefix = f"ivfpq-{uuid.uuid4().hex[:8]}"
        self._count = 0
        self._kept = []
        if n_threads is None:
            workers_per_host = {}
            for info in client.scheduler_info()["workers"].values():
                workers_per_host[info["host"]] = workers_per_host.get(info["host"], 0) + 1
            self._threads = workers_per_host
        else:
            self._threads = int(n_threads)
        self._raw = client.compute(X.to_delayed().ravel().tolist())
        self._weights = (
            [None] * self.n_blocks if weights is None
            else client.compute(weights.to_delayed().ravel().tolist())
        )
        self._homes = [None] * self.n_blocks
        self.data = None

    def _key(self, name, b=None):
        self._count += 1
        return f"{self._prefix}-{name}-{self._count}" + ("" if b is None else f"-{b}")

    def _submit_block(self, b, fn, args, name, heavy=True):
        where = {} if self._homes[b] is None else {"workers": [self._homes[b]], "allow_other_workers": True}
        if heavy:
            fn, args = _run, (fn, self._threads, *args)
        return self.client.submit(fn, *args, key=self._key(name, b), pure=False, **where)

    def validate(self):
        """Check every chunk on its worker; returns (block handles, combined statistics)."""
        checked = [
            self._submit_block(b, check_data_block,
                               (self._raw[b], self._weights[b], self.offsets[b], self.dtype,
                                self._cosine, self._name), "check")
            for b in range(self.n_blocks)
        ]
        blocks = [self.client.submit(operator.getitem, c, 0, key=self._key("block", b), pure=False)
                  for b, c in enumerate(checked)]
        self.data = [self.client.submit(operator.getitem, c, 1, key=self._key("data", b), pure=False)
                     for b, c in enumerate(checked)]
        stats = [self.client.submit(operator.getitem, c, 2, key=self._key("stats", b), pure=False)
                 for b, c in enumerate(checked)]
        total = tree_reduce(stats, lambda a, b: self.client.submit(
            combine_block_stats, a, b, key=self._key("stats"), pure=False))
        combined = self.client.gather(total)
        del checked, stats, total
        self._raw = self._weights = None  # the checked blocks hold what is needed
        # Pin each chunk's tasks to the worker that holds it, so per-point state
        # stays there even when a chunk is smaller than the centroids.
        who_has = self.client.who_has(self.data)
        self._homes = [(list(who_has.get(f.key, ())) or [None])[0] for f in self.data]
        return blocks, combined

    # -- the executor protocol -----------------------------------------------------------

    def put(self, value):
        # A task that returns the value (rather than scattered data): if every worker
        # holding it is lost, the scheduler can make it again.
        return self.client.submit(_identity, value, key=self._key("put"), pure=False)

    def keep(self, handle):
        self._kept.append(handle)

    def drop_kept(self):
        self._kept = []

    def gather(self, handles):
        return self.client.gather(handles)

    def submit(self, fn, *args, heavy=False):
        name = getattr(fn, "__name__", "task").strip("_")
        if heavy:
            fn, args = _run, (fn, self._threads, *args)
        return self.client.submit(fn, *args, key=self._key(name), pure=False)

    def map(self, fn, *per_block, shared=(), data=True, name=None):
        name = name or getattr(fn, "__name__", "map").strip("_")
        return [
            self._submit_block(b, fn, ((self.data[b],) if data else ()) + tuple(p[b] for p in per_block)
                               + tuple(shared), name, heavy=data)
            for b in range(self.n_blocks)
        ]

    def map_reduce(self, fn, combine, *per_block, shared=(), data=True, name=None, outputs=True):
        results = self.map(fn, *per_block, shared=shared, data=data, name=name)
        if outputs:
            out = [self.client.submit(operator.getitem, r, 0, key=self._key("out", b), pure=False)
                   for b, r in enumerate(results)]
            parts = [self.client.submit(operator.getitem, r, 1, key=self._key("part", b), pure=False)
                     for b, r in enumerate(results)]
        else:
            out, parts = None, results
        reduced = tree_reduce(parts, lambda a, b: self.client.submit(
            combine, a, b, key=self._key("reduce"), pure=False))
        return (out, reduced) if outputs else reduced

    def labels(self, states):
        """The labels as a Dask array chunked like the rows of ``X``, backed by the
        futures on the workers (they live as long as the array does)."""
        import dask.array as da
        from dask.highlevelgraph import HighLevelGraph

        futures = self.map(_labels_of, states, data=False, name="labels")
        parts = [da.from_delayed(f, shape=(n,), dtype=np.int64)
                 for f, n in zip(futures, self._chunk_rows)]
        # Built by hand rather than with da.concatenate, which drops empty chunks:
        # labels_ is chunked exactly like the rows of X.
        name = self._key("labels")
        layer = {(name, b): part.__dask_keys__()[0] for b, part in enumerate(parts)}
        graph = HighLevelGraph.from_collections(name, layer, dependencies=parts)
        return da.Array(graph, name, chunks=(self._chunk_rows,), dtype=np.int64)


# ----------------------------------------------------------------------------- entry point


def _labels_of(state):
    return state.labels


def _rows_like(X, sample_weight):
    """``sample_weight`` as None or a 1-D Dask array chunked like the rows of ``X``."""
    import dask.array as da

    if sample_weight is None:
        return None
    if np.isscalar(sample_weight) and not isinstance(sample_weight, (bool, str)):
        return da.full(X.shape[0], float(sample_weight), chunks=(X.chunks[0],), dtype=np.float64)
    if not hasattr(sample_weight, "chunks"):
        sample_weight = np.asarray(sample_weight)
    if sample_weight.ndim != 1 or sample_weight.shape[0] != X.shape[0]:
        raise ValueError(
            f"sample_weight must have shape ({X.shape[0]},) to match X, got shape {sample_weight.shape}"
        )
    if hasattr(sample_weight, "chunks"):
        return sample_weight.rechunk((X.chunks[0],))
    return da.from_array(sample_weight, chunks=(X.chunks[0],))


class _LocalDaskBlocks(LocalBlocks):
    """The chunks of a Dask array computed one at a time in this process (no client);
    labels come back as a Dask array chunked like the rows."""

    def __init__(self, X, weights, dtype, cosine):
        bounds = [0] + np.cumsum(X.chunks[0]).tolist()
        super().__init__(lambda start, stop: X[start:stop].compute(), bounds, X.shape[1], dtype,
                         weights, cosine)
        self._chunks = X.chunks[0]

    def labels(self, states):
        import dask.array as da

        return da.from_array(super().labels(states), chunks=(self._chunks,))


def dask_executor(X, sample_weight=None, block_rows=None, cosine=False, n_threads=None):
    """The executor for a Dask array: :class:`DaskBlocks` on the current
    ``distributed.Client``, or its chunks read in this process when there is none."""
    if block_rows is not None:
        raise ValueError(
            f"block_rows applies to NumPy arrays read block by block, got {block_rows!r} with a "
            "Dask array, whose row chunks are the blocks; rechunk X instead"
        )
    dtype = check_lazy_array(X, "X")
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})  # a block is whole rows
    weights = _rows_like(X, sample_weight)
    client = _current_client()
    if client is None:
        w = None if weights is None else np.asarray(weights.compute(), dtype=np.float64)
        return _LocalDaskBlocks(X, w, dtype, cosine)
    if n_threads is not None:
        check_positive_int(n_threads, "n_threads")
    return DaskBlocks(client, X, weights, dtype, cosine, n_threads)
