"""Moving trained state between ivfpq and faiss: coarse centroids, PQ codebooks, lists.

faiss is an optional dependency: :func:`require_faiss` imports it when a conversion is
asked for, and nothing else in the package does. The helpers here only copy arrays
between faiss's containers and NumPy; what a conversion means (which ivfpq state maps to
which faiss field, and what cannot be represented) is decided by the classes that call
them: :class:`ivfpq.ProductQuantizer`, :class:`ivfpq.IVFFlat`, :class:`ivfpq.IVFPQ`.

PQ codes: ivfpq stores one uint8 (``nbits <= 8``) or uint16 per sub-space; faiss packs
the ``M`` codes of a vector into ``ceil(M * nbits / 8)`` bytes, least significant bit
first. At 8 bits both layouts are the same bytes, at 16 bits the same little-endian
words; other widths are packed and unpacked here.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "require_faiss",
    "concrete",
    "faiss_metric",
    "metric_from_faiss",
    "flat_quantizer",
    "read_centroids",
    "pack_codes",
    "unpack_codes",
    "fill_invlists",
    "read_invlists",
]

_INSTALL_HINT = "pip install faiss-cpu (or: pip install 'ivfpq[bench]')"
# Rows of codes (un)packed at a time on the generic bit path: the bit array is
# rows x M x nbits bytes.
_PACK_BLOCK = 65536


def require_faiss():
    """The ``faiss`` module, or an ImportError that says how to install it."""
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(f"this conversion needs faiss, which is not installed: {_INSTALL_HINT}") from exc
    return faiss


def concrete(faiss, index):
    """A faiss index as its own class: faiss hands out sub-indexes (``base_index``,
    ``quantizer``) typed as the base class ``Index``, which hides their fields."""
    return faiss.downcast_index(index) if type(index) is faiss.Index else index


def faiss_metric(faiss, metric):
    """faiss's metric constant for a canonical ivfpq metric name."""
    return faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2


def metric_from_faiss(faiss, metric_type, what):
    if metric_type == faiss.METRIC_L2:
        return "l2"
    if metric_type == faiss.METRIC_INNER_PRODUCT:
        return "ip"
    raise ValueError(f"{what} uses faiss metric {metric_type}; only METRIC_L2 and "
                     "METRIC_INNER_PRODUCT have an ivfpq counterpart")


def flat_quantizer(faiss, centroids, metric):
    """An ``IndexFlatL2`` / ``IndexFlatIP`` holding ``centroids``."""
    d = centroids.shape[1]
    quantizer = faiss.IndexFlatIP(d) if metric == "ip" else faiss.IndexFlatL2(d)
    quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return quantizer


def read_centroids(index):
    """All ``ntotal`` vectors of a faiss index that can reconstruct them, (n, d) float32."""
    n = int(index.ntotal)
    if n == 0:
        return np.zeros((0, index.d), dtype=np.float32)
    return np.ascontiguousarray(index.reconstruct_n(0, n), dtype=np.float32)


def code_size(M, nbits):
    return (M * nbits + 7) // 8


def pack_codes(codes, nbits):
    """(n, M) uint8 / uint16 codes as faiss's packed bytes, (n, ceil(M * nbits / 8)) uint8."""
    n, M = codes.shape
    if nbits == 8:
        return np.ascontiguousarray(codes, dtype=np.uint8)
    if nbits == 16:
        return np.ascontiguousarray(codes, dtype="<u2").view(np.uint8)
    out = np.empty((n, code_size(M, nbits)), dtype=np.uint8)
    shifts = np.arange(nbits, dtype=np.uint16)
    for start in range(0, n, _PACK_BLOCK):
        stop = min(n, start + _PACK_BLOCK)
        bits = ((codes[start:stop, :, None].astype(np.uint16) >> shifts) & 1).astype(np.uint8)
        out[start:stop] = np.packbits(bits.reshape(stop - start, M * nbits), axis=1, bitorder="little")
    return out


def unpack_codes(packed, M, nbits, dtype):
    """The inverse of :func:`pack_codes`: (n, M) codes of ``dtype``."""
    n = packed.shape[0]
    packed = np.ascontiguousarray(packed, dtype=np.uint8).reshape(n, code_size(M, nbits))
    if nbits == 8:
        return packed.astype(dtype, copy=True)
    if nbits == 16:
        return packed.view("<u2").astype(dtype)
    out = np.empty((n, M), dtype=dtype)
    weights = (1 << np.arange(nbits, dtype=np.int64))
    for start in range(0, n, _PACK_BLOCK):
        stop = min(n, start + _PACK_BLOCK)
        bits = np.unpackbits(packed[start:stop], axis=1, count=M * nbits, bitorder="little")
        out[start:stop] = bits.reshape(stop - start, M, nbits).astype(np.int64) @ weights
    return out


def fill_invlists(faiss, index, sizes, ids, codes):
    """Append list ``l``'s ids and code bytes to ``index.invlists`` for every list.

    ``sizes``, ``ids`` and ``codes`` are packed in list order (see
    :meth:`ivfpq.index._lists.InvertedLists.packed`); ``codes`` is (n, code_size) uint8.
    """
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    invlists = index.invlists
    start = 0
    for l, size in enumerate(sizes.tolist()):
        if size:
            invlists.add_entries(l, size, faiss.swig_ptr(ids[start:start + size]),
                                 faiss.swig_ptr(codes[start:start + size]))
        start += size
    index.ntotal = int(start)


def read_invlists(faiss, index):
    """(sizes, ids, codes) of a faiss IVF index's lists, packed in list order.

    ``codes`` is (ntotal, code_size) uint8.
    """
    invlists = index.invlists
    nlist, width = int(invlists.nlist), int(invlists.code_size)
    sizes = np.array([invlists.list_size(l) for l in range(nlist)], dtype=np.int64)
    total = int(sizes.sum())
    ids = np.empty(total, dtype=np.int64)
    codes = np.empty((total, width), dtype=np.uint8)
    start = 0
    for l in np.flatnonzero(sizes).tolist():
        size = int(sizes[l])
        id_ptr = invlists.get_ids(l)
        code_ptr = invlists.get_codes(l)
        ids[start:start + size] = faiss.rev_swig_ptr(id_ptr, size)
        codes[start:start + size] = faiss.rev_swig_ptr(code_ptr, size * width).reshape(size, width)
        invlists.release_ids(l, id_ptr)
        invlists.release_codes(l, code_ptr)
        start += size
    return sizes, ids, codes
