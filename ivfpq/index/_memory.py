"""What an index's arrays take in memory, part by part."""

from __future__ import annotations

import numpy as np

__all__ = ["MemoryUsage", "array_bytes", "quantizer_bytes"]


def array_bytes(*arrays):
    """Bytes held by the distinct buffers among ``arrays`` (None skipped).

    Arrays that view one buffer are counted once, and a broadcast array (a stride of
    0, as HNSW's placeholder for dropped raw vectors) only for the buffer behind it.
    """
    seen = {}
    for arr in arrays:
        if arr is None:
            continue
        base = arr
        while isinstance(base.base, np.ndarray):
            base = base.base
        seen[base.__array_interface__["data"][0]] = base.itemsize if 0 in base.strides else base.nbytes
    return int(sum(seen.values()))


def quantizer_bytes(pq, *derived):
    """Bytes of a fitted ProductQuantizer (codebooks, edges, a tile encoder's arrays and
    sample) and of the ``derived`` arrays an index keeps next to it."""
    encoder = getattr(pq, "encoder_", None)
    tile = [v for v in vars(encoder).values() if isinstance(v, np.ndarray)] if encoder is not None else []
    return array_bytes(pq.codebooks_, pq.edges_, *tile, *derived)


class MemoryUsage(dict):
    """Bytes an index holds, by part: a dict ``{part: bytes}`` with totals.

    The parts name what the bytes are for ("vectors", "codes", "ids", "links",
    "centroids", "codebooks", "tables", "lists"); "spare" is room allocated for later
    additions and not used yet, and "scratch" buffers the searches reuse. Every part
    is counted at its allocated size, so :attr:`total` is what the index's arrays take.

    Attributes
    ----------
    ntotal : int
        Vectors in the index.
    """

    def __init__(self, parts, ntotal):
        super().__init__((name, int(value)) for name, value in parts.items())
        self.ntotal = int(ntotal)

    @property
    def total(self) -> int:
        """Bytes of every part."""
        return int(sum(self.values()))

    @property
    def used(self) -> int:
        """Bytes of every part but "spare" and "scratch": what the index needs to keep."""
        return int(sum(v for k, v in self.items() if k not in ("spare", "scratch")))

    @property
    def bytes_per_vector(self) -> float:
        """``used / ntotal``: fixed parts (centroids, codebooks) shared out; NaN when empty."""
        return self.used / self.ntotal if self.ntotal else float("nan")

    def __repr__(self):
        parts = ", ".join(f"{k}={v}" for k, v in self.items())
        return f"MemoryUsage(ntotal={self.ntotal}, total={self.total}, {parts})"
