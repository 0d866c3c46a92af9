"""k-means: the Lloyd loop, its assigners and initialisations."""

from .kmeans import KMeans, kmeans
from .minibatch import MiniBatchKMeans

__all__ = ["KMeans", "MiniBatchKMeans", "kmeans"]
