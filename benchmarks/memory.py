"""Memory: bytes per vector of every index, ivfpq vs faiss, hnswlib and usearch.

Each library builds its index on the same base vectors at the settings of
``benchmarks/ann.py`` (HNSW M=16, ef_construction=200; IVF nlist about 4 sqrt(n); IVF-PQ
M = d/8 or so, 8 bits; refine k-factor 4), then the bytes it holds are split into
what each vector costs:

* ``payload``: the vector's stored form (raw float32, PQ codes, or usearch's f16/i8);
* ``ids``: its label; ``links``: its graph edges (with level and offset bookkeeping);
* ``fixed``: what does not grow with n (centroids, codebooks, precomputed tables,
  list heads), shared out over the n vectors;
* ``bytes/vector``: all of these, the figure to compare;
* ``held/vector``: what the process holds, with the room kept for later additions
  and search scratch (ivfpq ``memory_usage().total``; faiss: the same as bytes/vector
  plus nothing it reports; hnswlib: its preallocated arrays; usearch: ``memory_usage``,
  which includes its arena reserve);
* ``file/vector``: the serialized size (faiss ``serialize_index``, hnswlib
  ``save_index``, usearch ``save()``, ivfpq ``save``).

How each figure is obtained is in the ``how`` column: ivfpq from ``memory_usage()``,
faiss from its arrays' known layout (codes, ids, neighbours), hnswlib from its layout
(``size_data_per_element`` as documented by hnswlib: links, vector and label per
element) and its file.

Datasets: ``sift10k`` (10,000 x 128), ``glove`` (the first 100,000 of the 200k x 50
GloVe vectors, L2-normalised as in ann.py).

Commands::

    python benchmarks/memory.py                        # both datasets
    python benchmarks/memory.py --datasets sift10k --families ivfflat,ivfpq
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _harness import load_shared, machine_line, print_table  # noqa: E402
from ann import Threads, default_nlist, default_pq_m  # noqa: E402

GLOVE_ROWS = 100_000
HNSW_M, HNSW_EFC = 16, 200
REFINE = 4


def load(name):
    if name == "sift10k":
        return load_shared("sift10k")[0], "SIFT10K 10,000 x 128"
    if name == "glove":
        X = load_shared("glove")[:GLOVE_ROWS].astype(np.float32)
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        return np.ascontiguousarray(X), f"GloVe first {GLOVE_ROWS:,} x 50 (normalised)"
    raise ValueError(f"unknown dataset {name!r}")


def row(library, setting, n, payload, ids, links, fixed, held=None, file=None, how=""):
    per = payload + ids + links + fixed
    return {"library": library, "setting": setting, "payload": payload / n, "ids": ids / n,
            "links": links / n, "fixed": fixed / n, "bytes/vector": per / n,
            "held/vector": (held if held is not None else per) / n,
            "file/vector": None if file is None else file / n, "how": how}


# ----------------------------------------------------------------------------- ivfpq


def ours(index, library, setting):
    usage = index.memory_usage()
    n = usage.ntotal
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.npz"
        index.save(path)
        file = path.stat().st_size
    payload = usage.get("vectors", 0) + usage.get("codes", 0)
    fixed = sum(usage.get(k, 0) for k in ("centroids", "codebooks", "tables", "lists"))
    return row(library, setting, n, payload, usage["ids"], usage.get("links", 0), fixed,
               held=usage.total, file=file, how="memory_usage()")


def ours_ivfflat(X, nlist):
    from ivfpq import IVFFlat

    index = IVFFlat(nlist, random_state=0, n_threads=2).train(X)
    index.add(X)
    return ours(index, "ivfpq", f"nlist={nlist}")


def ours_ivfpq(X, nlist, m, refine=None):
    from ivfpq import IVFPQ

    index = IVFPQ(nlist, m, 8, keep_raw=refine is not None, refine=refine, random_state=0,
                  n_threads=2).train(X)
    index.add(X)
    return ours(index, "ivfpq", f"nlist={nlist} M={m}" + (f" refine={refine}" if refine else ""))


def ours_hnsw(X, compress=None, pq_m=None):
    from ivfpq import HNSW

    index = HNSW(M=HNSW_M, ef_construction=HNSW_EFC, random_state=0, n_threads=2)
    if compress is None:
        index.add(X)
        setting = f"M={HNSW_M}"
    else:  # as ann.py's hnswpq family: compress after 20%, add the rest compressed
        first = len(X) // 5
        index.add(X[:first])
        index.compress(codebook=compress, M=pq_m)
        index.add(X[first:])
        setting = f"M={HNSW_M} {compress} PQ M={index.pq_.M}"
    return ours(index, "ivfpq", setting)


# ----------------------------------------------------------------------------- faiss


def faiss_file(index):
    import faiss

    return int(faiss.serialize_index(index).nbytes)


def faiss_ivf_row(ivf, top, setting, raw_bytes=0):
    """An IVF index's layout: code_size bytes and an 8-byte id per vector; the rest fixed."""
    import faiss

    n = ivf.ntotal
    payload = n * ivf.code_size + raw_bytes
    ids = n * 8
    file = faiss_file(top)
    table = 0
    if isinstance(ivf, faiss.IndexIVFPQ) and ivf.use_precomputed_table:
        table = ivf.precomputed_table.size() * 4  # held in memory, recomputed on load
    fixed = file - payload - ids + table
    return row("faiss", setting, n, payload, ids, 0, fixed, file=file,
               how="layout + serialize_index")


def faiss_ivfflat(X, nlist):
    import faiss

    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(X.shape[1]), X.shape[1], nlist)
    index.cp.seed = 0
    index.train(X)
    index.add(X)
    return faiss_ivf_row(index, index, f"nlist={nlist}")


def faiss_ivfpq(X, nlist, m, refine=None):
    import faiss

    ivf = faiss.IndexIVFPQ(faiss.IndexFlatL2(X.shape[1]), X.shape[1], nlist, m, 8)
    ivf.cp.seed = 0
    top = ivf
    if refine:
        top = faiss.IndexRefineFlat(ivf)
        top.k_factor = refine
    top.train(X)
    top.add(X)
    raw = X.nbytes if refine else 0
    return faiss_ivf_row(ivf, top, f"nlist={nlist} M={m}" + (f" refine={refine}" if refine else ""), raw)


def faiss_hnsw_row(index, setting):
    import faiss

    n = index.ntotal
    hnsw = index.hnsw
    links = sum(faiss.vector_to_array(v).nbytes for v in (hnsw.neighbors, hnsw.offsets, hnsw.levels))
    storage = faiss.downcast_index(index.storage)
    payload = n * storage.code_size
    file = faiss_file(index)
    fixed = max(0, file - payload - links)  # codebooks, level probabilities
    return row("faiss", setting, n, payload, 0, links, fixed, file=file,
               how="layout + serialize_index")


def faiss_hnsw(X):
    import faiss

    index = faiss.IndexHNSWFlat(X.shape[1], HNSW_M)
    index.hnsw.efConstruction = HNSW_EFC
    index.add(X)
    return faiss_hnsw_row(index, f"HNSWFlat M={HNSW_M}")


def faiss_hnswpq(X, pq_m):
    import faiss

    index = faiss.IndexHNSWPQ(X.shape[1], pq_m, HNSW_M)
    index.hnsw.efConstruction = HNSW_EFC
    index.train(X)
    index.add(X)
    return faiss_hnsw_row(index, f"HNSWPQ M={HNSW_M} PQ M={pq_m}")


# ----------------------------------------------------------------------------- hnswlib, usearch


def hnswlib_hnsw(X):
    import hnswlib

    n, d = X.shape
    index = hnswlib.Index(space="l2", dim=d)
    index.init_index(max_elements=n, M=HNSW_M, ef_construction=HNSW_EFC, random_seed=0)
    index.set_num_threads(2)
    index.add_items(X, np.arange(n))
    assert index.get_current_count() == n
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "index.bin")
        index.save_index(path)
        file = os.path.getsize(path)
    # hnswlib's layout per element on level 0: a 4-byte count and 2M int32 links, the
    # vector, an 8-byte label; upper levels hold a count and M links per level. The
    # file is these arrays and a header.
    payload, ids = n * d * 4, n * 8
    links = file - payload - ids
    return row("hnswlib", f"M={HNSW_M}", n, payload, ids, links, 0, file=file,
               how="layout + save_index")


def usearch_hnsw(X, dtype):
    try:
        from usearch.index import Index
    except ImportError:
        return None
    n, d = X.shape
    index = Index(ndim=d, metric="l2sq", dtype=dtype, connectivity=HNSW_M, expansion_add=HNSW_EFC)
    index.add(np.arange(n), X, threads=2)
    file = len(index.save())
    payload = n * d * {"f32": 4, "f16": 2, "i8": 1}[dtype]
    ids = n * 8
    return row("usearch", f"M={HNSW_M} {dtype}", n, payload, ids, file - payload - ids, 0,
               held=index.memory_usage, file=file, how="serialized; held: memory_usage")


# ----------------------------------------------------------------------------- main


def family_rows(family, X):
    n, d = X.shape
    nlist, pq_m = default_nlist(n), default_pq_m(d)
    if family == "ivfflat":
        return [lambda: ours_ivfflat(X, nlist), lambda: faiss_ivfflat(X, nlist)]
    if family == "ivfpq":
        return [lambda: ours_ivfpq(X, nlist, pq_m), lambda: faiss_ivfpq(X, nlist, pq_m)]
    if family == "ivfpq-refine":
        return [lambda: ours_ivfpq(X, nlist, pq_m, REFINE), lambda: faiss_ivfpq(X, nlist, pq_m, REFINE)]
    if family == "hnsw":
        return [lambda: ours_hnsw(X), lambda: faiss_hnsw(X), lambda: hnswlib_hnsw(X),
                lambda: usearch_hnsw(X, "f32")]
    if family == "hnswpq":
        return [lambda: ours_hnsw(X, "tile"), lambda: ours_hnsw(X, "kmeans", pq_m),
                lambda: faiss_hnswpq(X, pq_m), lambda: usearch_hnsw(X, "f16"),
                lambda: usearch_hnsw(X, "i8")]
    raise ValueError(f"unknown family {family!r}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="sift10k,glove")
    parser.add_argument("--families", default="ivfflat,ivfpq,ivfpq-refine,hnsw,hnswpq")
    args = parser.parse_args(argv)
    print(f"# memory  {datetime.date.today()}  {machine_line()}")
    print(f"# command: python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:] if argv is None else argv)}")
    rows = []
    for dataset in args.datasets.split(","):
        X, description = load(dataset)
        print(f"# {dataset}: {description}", flush=True)
        for family in args.families.split(","):
            for build in family_rows(family, X):
                start = time.perf_counter()
                with Threads(2):
                    result = build()
                if result is None:
                    continue
                rows.append({"dataset": dataset, "family": family, **result})
                print(f"# {dataset}/{family}/{result['library']} {result['setting']}: "
                      f"{result['bytes/vector']:.1f} B/vector ({time.perf_counter() - start:.1f} s)",
                      flush=True)
    print_table(rows, ["dataset", "family", "library", "setting", "payload", "ids", "links", "fixed",
                       "bytes/vector", "held/vector", "file/vector", "how"],
                title="Bytes per vector")


if __name__ == "__main__":
    main()
