"""ivfpq: k-means at scale and the vector-search structures built on it."""

from ._storage import FileFormatError, load
from ._validation import NotFittedError
from .cluster import KMeans, kmeans
from .index import IVFFlat, ground_truth, recall

__version__ = "0.1.0"

__all__ = [
    "KMeans",
    "NotFittedError",
    "kmeans",
    "__version__",
    "FileFormatError",
    "load",
    "IVFFlat",
    "ground_truth",
    "recall",
]
