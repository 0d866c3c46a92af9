"""Vector indexes built on k-means: inverted files (IVF) and graphs (HNSW)."""

from .hnsw import HNSW
from .ivf import IVFFlat, IVFPQ
from .metrics import ground_truth, recall

__all__ = ["HNSW", "IVFFlat", "IVFPQ", "ground_truth", "recall"]
