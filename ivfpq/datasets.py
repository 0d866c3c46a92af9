"""Seeded synthetic data, and loaders for folders of real vectors."""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._validation import check_positive_float, check_positive_int, check_random_state
from .cluster import KMeans
from .io import (
    EXTENSIONS,
    VectorFileError,
    _atomic_write,
    read_float32,
    read_labels,
    read_vectors,
    split_dataset_path,
)

__all__ = [
    "make_blobs",
    "MixtureModel",
    "fit_mixture",
    "sample_mixture",
    "write_mixture_sample",
    "data_root",
    "dataset_files",
    "load_dataset",
    "HDF5_ROLE_DATASETS",
    "resolve_input",
    "read_input",
    "read_input_ids",
    "ground_truth_source",
]


def make_blobs(n_samples=1000, n_features=2, centers=5, cluster_std=1.0, spread=10.0,
               random_state=0, dtype=np.float32, std_range=None):
    """Gaussian blobs: ``centers`` clusters of near-equal size.

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
    std_range : (float, float) or None, default=None
        Anisotropic blobs: each blob's standard deviation along each dimension is
        ``cluster_std`` times a factor drawn uniformly from this range (None: every
        blob isotropic).

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
    if std_range is not None:
        low, high = (check_positive_float(v, "std_range", allow_zero=True) for v in std_range)
        if low > high:
            raise ValueError(f"std_range must be (low, high) with low <= high, got {std_range!r}")
    rng = check_random_state(random_state)
    means = rng.uniform(-spread, spread, size=(centers, n_features))
    y = np.arange(n_samples) % centers
    rng.shuffle(y)
    scales = np.full((centers, n_features), cluster_std)
    if std_range is not None:
        scales = cluster_std * rng.uniform(low, high, size=(centers, n_features))
    X = means[y] + scales[y] * rng.standard_normal((n_samples, n_features))
    return X.astype(dtype), y.astype(np.int64)


# ----------------------------------------------------------------------------- mixtures fitted to real data


@dataclass
class MixtureModel:
    """A Gaussian mixture with diagonal covariances, and how its samples are finished.

    ``weights`` (c,) sum to 1; ``means`` and ``stds`` are (c, d). A sample is drawn
    from a component chosen by weight, then, if ``norm`` is set, clipped at ``low``
    and scaled to that L2 norm (as SIFT descriptors are), then rounded and clipped to
    ``[low, high]`` when ``dtype`` is an integer type.
    """

    weights: np.ndarray
    means: np.ndarray
    stds: np.ndarray
    norm: float | None = None
    low: float | None = None
    high: float | None = None
    dtype: str = "float32"


def fit_mixture(X, n_components, *, norm=None, low=None, high=None, dtype=None, max_iter=10,
                random_state=0, block_rows=None):
    """Fit a :class:`MixtureModel` to ``X``: k-means components, their sizes and
    per-dimension spreads (varied sizes, anisotropic), so that samples share the real
    data's neighbourhood structure at scales above the components'.

    Parameters
    ----------
    X : array-like or np.memmap of shape (n, d)
    n_components : int
    norm, low, high : float or None
        How samples are finished (see :class:`MixtureModel`).
    dtype : numpy dtype or None
        The samples' dtype (default: ``X``'s).
    max_iter, random_state, block_rows : passed to :class:`ivfpq.KMeans` (``algorithm="auto"``).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).integers(0, 50, (2000, 8)).astype(np.uint8)
    >>> model = fit_mixture(X, 20, low=0, high=255, random_state=0)
    >>> model.means.shape, round(float(model.weights.sum()), 6), model.dtype
    ((20, 8), 1.0, 'uint8')
    """
    n_components = check_positive_int(n_components, "n_components")
    km = KMeans(n_components, init="k-means||", max_iter=max_iter, algorithm="auto", random_state=random_state)
    km.fit(X, block_rows=block_rows)
    labels = np.asarray(km.labels_)
    counts = np.bincount(labels, minlength=n_components).astype(np.float64)
    sums = np.zeros((n_components, X.shape[1]))
    squares = np.zeros((n_components, X.shape[1]))
    step = block_rows or 65536
    for start in range(0, X.shape[0], step):
        x = np.asarray(X[start:start + step], dtype=np.float64)
        np.add.at(sums, labels[start:start + step], x)
        np.add.at(squares, labels[start:start + step], x * x)
    filled = counts > 0
    means = np.zeros_like(sums)
    means[filled] = sums[filled] / counts[filled, None]
    variance = np.zeros_like(sums)
    variance[filled] = np.maximum(squares[filled] / counts[filled, None] - means[filled] ** 2, 0.0)
    return MixtureModel(counts[filled] / counts.sum(), means[filled], np.sqrt(variance[filled]), norm, low, high,
                        str(np.dtype(dtype or X.dtype)))


def _finish(model, x):
    if model.norm is not None:
        if model.low is not None:
            np.maximum(x, model.low, out=x)
        lengths = np.linalg.norm(x, axis=1, keepdims=True)
        x *= model.norm / np.maximum(lengths, 1e-12)
    dtype = np.dtype(model.dtype)
    if dtype.kind in "iu":
        np.rint(x, out=x)
        info = np.iinfo(dtype)
        np.clip(x, info.min if model.low is None else model.low, info.max if model.high is None else model.high, out=x)
    elif model.low is not None or model.high is not None:
        np.clip(x, model.low, model.high, out=x)
    return x.astype(dtype)


#: Rows per independently seeded block of :func:`sample_mixture`.
SAMPLE_BLOCK = 65536


def sample_mixture(model, n_samples, *, random_state=0, start=0):
    """Rows ``start:start + n_samples`` of the endless sample of ``model`` seeded by
    ``random_state`` (an int): each block of ``SAMPLE_BLOCK`` rows has its own seed, so
    any range is the same whatever ranges were drawn before.

    Examples
    --------
    >>> import numpy as np
    >>> model = MixtureModel(np.array([0.5, 0.5]), np.zeros((2, 3)), np.ones((2, 3)))
    >>> whole = sample_mixture(model, 100_000, random_state=1)
    >>> bool(np.array_equal(whole[70_000:70_010], sample_mixture(model, 10, random_state=1, start=70_000)))
    True
    """
    n_samples = check_positive_int(n_samples, "n_samples", minimum=0)
    out = np.empty((n_samples, model.means.shape[1]), dtype=np.dtype(model.dtype))
    cumulative = np.cumsum(model.weights)
    first, last = start // SAMPLE_BLOCK, (start + n_samples - 1) // SAMPLE_BLOCK
    for block in range(first, last + 1) if n_samples else ():
        rng = np.random.default_rng(np.random.SeedSequence(int(random_state), spawn_key=(block,)))
        component = np.minimum(np.searchsorted(cumulative, rng.random(SAMPLE_BLOCK) * cumulative[-1]),
                               len(cumulative) - 1)
        noise = rng.standard_normal((SAMPLE_BLOCK, model.means.shape[1]))
        lo = max(start, block * SAMPLE_BLOCK)
        hi = min(start + n_samples, (block + 1) * SAMPLE_BLOCK)
        rows = slice(lo - block * SAMPLE_BLOCK, hi - block * SAMPLE_BLOCK)
        x = model.means[component[rows]] + model.stds[component[rows]] * noise[rows]
        out[lo - start:hi - start] = _finish(model, x)
    return out


def write_mixture_sample(path, model, n_samples, *, random_state=0, callback=None):
    """Write :func:`sample_mixture`'s first ``n_samples`` rows to ``path`` (``.bvecs``,
    ``.fvecs`` or ``.npy``) block by block, atomically; the file can exceed memory.
    ``callback(rows_written, n_samples)`` follows the progress."""
    path = Path(path)
    n_samples = check_positive_int(n_samples, "n_samples")
    d = model.means.shape[1]
    ext = path.suffix.lower()
    if ext not in (".bvecs", ".fvecs", ".npy"):
        raise ValueError(f"path must end in .bvecs, .fvecs or .npy, got {path.name!r}")
    value_dtype = {".bvecs": np.uint8, ".fvecs": np.float32}.get(ext, np.dtype(model.dtype))

    def write(tmp):
        if ext == ".npy":
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=value_dtype, shape=(n_samples, d))
        else:
            handle = open(tmp, "wb")
            row_dtype = np.dtype([("d", "<i4"), ("v", value_dtype, (d,))])
        try:
            for start in range(0, n_samples, SAMPLE_BLOCK):
                block = sample_mixture(model, min(SAMPLE_BLOCK, n_samples - start), random_state=random_state,
                                       start=start)
                if ext == ".npy":
                    out[start:start + block.shape[0]] = block
                else:
                    rows = np.empty(block.shape[0], dtype=row_dtype)
                    rows["d"] = d
                    rows["v"] = block
                    rows.tofile(handle)
                if callback is not None:
                    callback(start + block.shape[0], n_samples)
        finally:
            if ext == ".npy":
                out.flush()
                del out
            else:
                handle.close()

    _atomic_write(path, write)
    return path


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


# A dtype tag between the stem and the extension, as in ``base.u8.npy``.
_DTYPE_TAG = re.compile(r"\.(u8|i8|u16|i16|f16|f32|f64)$", re.IGNORECASE)


def _stem(name: str):
    lower = name.lower()
    for ending in sorted(EXTENSIONS, key=len, reverse=True):
        if lower.endswith(ending):
            return _DTYPE_TAG.sub("", name[: len(name) - len(ending)]), ending
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


# ----------------------------------------------------------------------------- inputs by role
# A command names its input as a file, as ``file.hdf5:dataset``, or as a dataset folder;
# the role (base vectors, queries, ground truth) picks the folder's file, or the
# ann-benchmarks dataset of an HDF5 file named without one.

#: The ann-benchmarks HDF5 dataset each role means when a path names none.
HDF5_ROLE_DATASETS = {"base": "train", "query": "test", "groundtruth": "neighbors"}


def resolve_input(path, role="base", dataset=None):
    """The file and HDF5 dataset that an input names for ``role``.

    Parameters
    ----------
    path : str or Path
        A vector file, ``file.hdf5:dataset``, or a dataset folder (see
        :func:`dataset_files`).
    role : {"base", "query", "groundtruth", "labels", "query_labels"}, default="base"
        Which of a folder's files, and which HDF5 dataset (:data:`HDF5_ROLE_DATASETS`)
        when an ``.hdf5`` path names none.
    dataset : str, optional
        The HDF5 dataset, overriding the role's.

    Returns
    -------
    path : str
    dataset : str or None

    Raises
    ------
    FileNotFoundError
        A folder without a file for ``role``.

    Examples
    --------
    >>> from ivfpq.datasets import resolve_input
    >>> resolve_input("glove.hdf5", "query")
    ('glove.hdf5', 'test')
    >>> resolve_input("glove.hdf5:train", "query")
    ('glove.hdf5:train', None)
    """
    folder = Path(path)
    if folder.is_dir():
        files = dataset_files(folder)
        if role not in files:
            raise FileNotFoundError(
                f"{folder}: the folder has no {role} file (found: {', '.join(sorted(files)) or 'none'})"
            )
        path = files[role]
    path = str(path)
    if dataset is None and path.lower().endswith((".hdf5", ".h5")):
        dataset = HDF5_ROLE_DATASETS.get(role)
    return path, dataset


def read_input(path, role="base", *, dataset=None, callback=None):
    """All the vectors an input names for ``role``, as float32 (see :func:`resolve_input`).

    Parameters
    ----------
    path, role, dataset
        As :func:`resolve_input`.
    callback : callable, optional
        ``callback(rows_read, n_rows)`` after each block read (a progress bar).

    Returns
    -------
    path : str
        The file read.
    X : ndarray of shape (n, d), float32
        Every value finite (:func:`ivfpq.io.read_float32`).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ivfpq.io import write_vectors
    >>> from ivfpq.datasets import read_input
    >>> folder = tempfile.mkdtemp()
    >>> write_vectors(os.path.join(folder, "query.fvecs"), np.ones((2, 3), np.float32))
    >>> path, Q = read_input(folder, "query")
    >>> os.path.basename(path), Q.shape
    ('query.fvecs', (2, 3))
    """
    path, dataset = resolve_input(path, role, dataset)
    return path, read_float32(path, dataset=dataset, callback=callback)


def read_input_ids(path, role="groundtruth", *, what="ids"):
    """Integer ids (ground-truth neighbours) an input names for ``role``, as int64.

    Floats are accepted when they hold whole numbers.

    Parameters
    ----------
    path, role
        As :func:`resolve_input`.
    what : str, default="ids"
        What the ids are, for the error message.

    Returns
    -------
    path : str
    ids : ndarray of shape (n, k), int64

    Raises
    ------
    VectorFileError
        When the file holds other than whole numbers.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ivfpq.io import write_vectors
    >>> from ivfpq.datasets import read_input_ids
    >>> path = os.path.join(tempfile.mkdtemp(), "truth.ivecs")
    >>> write_vectors(path, np.array([[3, 1], [0, 2]], np.int32))
    >>> read_input_ids(path)[1].tolist()
    [[3, 1], [0, 2]]
    """
    path, dataset = resolve_input(path, role)
    ids = np.asarray(read_vectors(path, dataset=dataset))
    if ids.dtype.kind not in "iu":
        if ids.dtype.kind == "f" and np.array_equal(ids, np.round(ids)):
            ids = ids.astype(np.int64)
        else:
            raise VectorFileError(path, f"{what} must be integers, got dtype {ids.dtype}")
    return path, ids.astype(np.int64, copy=False)


def ground_truth_source(queries):
    """Where the ground truth of ``queries`` lies when none is named, or None.

    A dataset folder holds its own (its groundtruth file); so does an ann-benchmarks
    HDF5 file (its ``neighbors`` dataset), whichever of its datasets the queries are.

    Examples
    --------
    >>> from ivfpq.datasets import ground_truth_source
    >>> ground_truth_source("glove.hdf5:test"), ground_truth_source("query.fvecs")
    ('glove.hdf5', None)
    """
    if Path(queries).is_dir():
        return str(queries)
    file, _ = split_dataset_path(queries)
    return str(file) if file.suffix.lower() in (".hdf5", ".h5") else None
