"""Vector indexes built on k-means: inverted files (IVF) and graphs (HNSW)."""

from .ivf import IVFFlat
from .metrics import ground_truth, recall

__all__ = ["IVFFlat", "ground_truth", "recall"]
