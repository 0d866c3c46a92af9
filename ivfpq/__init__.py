"""ivfpq: k-means at scale and the vector-search structures built on it."""

from ._validation import NotFittedError
from .cluster import KMeans, kmeans
from .io import iter_vector_blocks, read_vectors, write_vectors
from .quantize import ProductQuantizer, TileEncoder

__version__ = "0.1.0"

__all__ = [
    "KMeans",
    "NotFittedError",
    "ProductQuantizer",
    "TileEncoder",
    "kmeans",
    "__version__",
    "iter_vector_blocks",
    "read_vectors",
    "write_vectors",
]
