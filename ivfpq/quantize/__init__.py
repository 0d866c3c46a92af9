"""Vector quantizers: product quantization with k-means or tile codebooks."""

from .pq import ProductQuantizer
from .tile import TileEncoder

__all__ = ["ProductQuantizer", "TileEncoder"]
