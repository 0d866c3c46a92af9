"""Seeded synthetic data, and loaders for folders of real vectors."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

import numpy as np

from ._validation import check_positive_float, check_positive_int, check_random_state
from .io import EXTENSIONS, read_labels, read_vectors

__all__ = ["make_blobs", "data_root", "dataset_files", "load_dataset"]


def make_blobs(n_samples=1000, n_features=2, centers=5, cluster_std=1.0, spread=10.0,
               random_state=0, dtype=np.float32):
    """Gaussian blobs: ``centers`` isotropic clusters of near-equal size.

    Parameters
    ----------
    n_samples, n_features, centers : int
        Number of points, dimensions and blobs.
    cluster_std : float, default=1.0
        Standard deviation of each blob.
    spread : float, default=10.0
        Blob centres are drawn uniformly from ``[-spread, spread]`` per dimension.
    random_state : int, Generator or None, default=0
    dtype : numpy dtype, default=float32

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    y : ndarray of shape (n_samples,), int64
        The blob each point was drawn from.

    Examples
    --------
    >>> from ivfpq.datasets import make_blobs
    >>> X, y = make_blobs(300, 2, centers=3, random_state=0)
    >>> X.shape, int(y.max())
    ((300, 2), 2)
    """
    n_samples = check_positive_int(n_samples, "n_samples")
    n_features = check_positive_int(n_features, "n_features")
    centers = check_positive_int(centers, "centers")
    cluster_std = check_positive_float(cluster_std, "cluster_std", allow_zero=True)
    spread = check_positive_float(spread, "spread", allow_zero=True)
    rng = check_random_state(random_state)
    means = rng.uniform(-spread, spread, size=(centers, n_features))
    y = np.arange(n_samples) % centers
    rng.shuffle(y)
    X = means[y] + cluster_std * rng.standard_normal((n_samples, n_features))
    return X.astype(dtype), y.astype(np.int64)


# ----------------------------------------------------------------------------- real data folders

#: Short names for the folders of ``../shared/data``.
ALIASES = {
    "glove": "glove-6b-50d-200k",
    "sift5k": "sift5k-ngt",
    "minilm": "minilm-wordnet500",
}

# What each file of a dataset folder is, by the name in front of its extension; the first
# pattern that matches wins, and within one pattern .npy beats the other formats.
_ROLES = {
    "base": ("base", "*_base", "vectors", "embeddings", "train-images-idx3", "train"),
    "query": ("query", "*_query", "t10k-images-idx3", "test"),
    "groundtruth": ("groundtruth", "*_groundtruth", "neighbors"),
    "labels": ("labels", "lexfile", "train-labels-idx1"),
    "query_labels": ("query_labels", "t10k-labels-idx1"),
}
_ONE_D_ROLES = ("labels", "query_labels")


def data_root(root=None) -> Path:
    """The folder that holds the datasets (like ``../shared/data``).

    ``root`` if given, else the ``IVFPQ_DATA`` environment variable, else the first
    ``shared/data`` folder found walking up from the current folder or from this package.

    Raises
    ------
    FileNotFoundError
        When no such folder exists.
    """
    if root is not None:
        path = Path(root)
    elif os.environ.get("IVFPQ_DATA"):
        path = Path(os.environ["IVFPQ_DATA"])
    else:
        starts = [Path.cwd(), Path(__file__).resolve().parent]
        for start in starts:
            for folder in (start, *start.parents):
                if (folder / "shared" / "data").is_dir():
                    return folder / "shared" / "data"
        raise FileNotFoundError(
            "no data folder found: pass root=, set IVFPQ_DATA, or run from below a folder "
            "that contains shared/data"
        )
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: data folder does not exist")
    return path


def _stem(name: str):
    lower = name.lower()
    for ending in sorted(EXTENSIONS, key=len, reverse=True):
        if lower.endswith(ending):
            return name[: len(name) - len(ending)], ending
    return None, None


def dataset_files(folder) -> dict:
    """Which file of ``folder`` is the base, query, ground truth, labels, query labels.

    Parameters
    ----------
    folder : str or Path
        A dataset folder, such as ``shared/data/sift10k``.

    Returns
    -------
    dict
        Role name -> Path, for the roles found.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ivfpq.datasets import dataset_files
    >>> folder = tempfile.mkdtemp()
    >>> for name in ("base.npy", "query.npy", "notes.txt"):
    ...     open(os.path.join(folder, name), "wb").close()
    >>> sorted(dataset_files(folder))
    ['base', 'query']
    """
    folder = Path(folder)
    files = {}
    for path in sorted(folder.iterdir()):
        stem, ending = _stem(path.name)
        if stem is not None and path.is_file():
            files[path] = (stem, ending)
    found = {}
    for role, patterns in _ROLES.items():
        for pattern in patterns:
            matches = [p for p, (stem, _) in files.items() if fnmatch.fnmatch(stem.lower(), pattern)]
            if matches:
                matches.sort(key=lambda p: (files[p][1] != ".npy", p.name))
                found[role] = matches[0]
                break
    return found


def load_dataset(name, root=None, *, mmap=True) -> dict:
    """Load a folder of real vectors: base, queries, ground truth and labels.

    Parameters
    ----------
    name : str or Path
        A folder name under :func:`data_root` ("sift10k", "glove", "mnist",
        "fashion-mnist", "sift5k", "minilm", or any other), or a path to a folder.
    root : str or Path, optional
        The folder holding the datasets; see :func:`data_root`.
    mmap : bool, default=True
        Memory-map the files that allow it.

    Returns
    -------
    dict
        Arrays by role: ``"base"`` (n, d) always, and ``"query"``, ``"groundtruth"``,
        ``"labels"``, ``"query_labels"`` where the folder has them. Values keep the
        file's dtype (IDX images are uint8, flattened to one row per image).

    Examples
    --------
    >>> from ivfpq.datasets import load_dataset
    >>> data = load_dataset("sift10k")                      # doctest: +SKIP
    >>> data["base"].shape, data["query"].shape, data["groundtruth"].shape  # doctest: +SKIP
    ((10000, 128), (100, 128), (100, 100))
    """
    folder = Path(name)
    if not folder.is_dir():
        folder = data_root(root) / ALIASES.get(str(name), str(name))
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such dataset folder")
    files = dataset_files(folder)
    if "base" not in files:
        raise FileNotFoundError(
            f"{folder}: no base vectors found (looked for base.*, *_base.*, vectors.*, "
            "embeddings.*, train-images-idx3-ubyte*, train.*)"
        )
    out = {}
    for role, path in files.items():
        out[role] = read_labels(path) if role in _ONE_D_ROLES else read_vectors(path, mmap=mmap)
    return out
