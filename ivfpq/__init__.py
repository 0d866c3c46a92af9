"""ivfpq: k-means at scale and the vector-search structures built on it."""

from ._validation import NotFittedError
from .cluster import KMeans, kmeans

__version__ = "0.1.0"

__all__ = ["KMeans", "NotFittedError", "kmeans", "__version__"]
