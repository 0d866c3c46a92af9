"""ivfpq: k-means at scale and the vector-search structures built on it."""

from ._storage import FileFormatError, load
from ._validation import ConvergenceWarning, NotFittedError
from .cluster import KMeans, MiniBatchKMeans, kmeans
from .io import iter_vector_blocks, read_vectors, write_vectors
from .quantize import ProductQuantizer, TileEncoder
from .index import HNSW, IVFFlat, IVFPQ, ground_truth, recall

__version__ = "0.1.0"

__all__ = [
    "KMeans",
    "MiniBatchKMeans",
    "NotFittedError",
    "ConvergenceWarning",
    "ProductQuantizer",
    "TileEncoder",
    "kmeans",
    "__version__",
    "iter_vector_blocks",
    "read_vectors",
    "write_vectors",
    "FileFormatError",
    "load",
    "HNSW",
    "IVFFlat",
    "IVFPQ",
    "ground_truth",
    "recall",
]
