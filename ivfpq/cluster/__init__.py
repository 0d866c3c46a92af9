"""k-means: the Lloyd loop, mini-batch k-means, their assigners and initialisations."""

from .kmeans import KMeans, kmeans
from .minibatch import MiniBatchKMeans

__all__ = ["KMeans", "MiniBatchKMeans", "kmeans"]
