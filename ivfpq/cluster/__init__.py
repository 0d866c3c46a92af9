"""k-means: the Lloyd loop, its assigners and initialisations."""

from .kmeans import KMeans, kmeans

__all__ = ["KMeans", "kmeans"]
