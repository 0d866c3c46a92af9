"""Vector indexes built on k-means: inverted files (IVF) and graphs (HNSW)."""

from .ivf import IVFFlat, IVFPQ
from .metrics import ground_truth, recall

__all__ = ["IVFFlat", "IVFPQ", "ground_truth", "recall"]
