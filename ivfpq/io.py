"""Vector files: ``.fvecs``, ``.ivecs``, ``.bvecs``, ``.npy``, ann-benchmarks ``.hdf5`` and IDX.

Readers memory-map wherever the format allows it (``.fvecs``/``.ivecs``/``.bvecs``,
``.npy``, contiguous HDF5 datasets), so opening a file costs no memory and a file larger
than memory can be processed block by block with :func:`iter_vector_blocks`. A file
that is truncated, whose rows disagree on their dimension, or whose extension is
unknown raises :class:`VectorFileError` naming the file and the byte offset or row.

Formats
-------
``.fvecs`` / ``.ivecs`` / ``.bvecs`` (TEXMEX)
    Each row is a little-endian int32 dimension ``d`` followed by ``d`` values:
    float32, int32 or uint8.
``.npy``
    NumPy's format; pickled object arrays are never loaded.
``.hdf5`` / ``.h5`` (ann-benchmarks layout, needs ``h5py``: ``pip install "ivfpq[hdf5]"``)
    Datasets ``train`` (base vectors), ``test`` (queries), ``neighbors`` (ids of the true
    nearest neighbours, int) and ``distances``, and a ``distance`` attribute
    ("euclidean" or "angular"). Name a dataset with ``path.hdf5:test`` or ``dataset=``.
IDX (``*-ubyte``, ``*.idx``, optionally gzip-compressed), as MNIST ships
    Read only; images are flattened to one row each.

Writers take the format from the extension and write through a temporary file that is
renamed into place, so an interrupted write never leaves a half-written file behind.
"""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np

__all__ = [
    "VectorFileError",
    "EXTENSIONS",
    "read_vectors",
    "write_vectors",
    "iter_vector_blocks",
    "vector_file_shape",
    "read_ann_hdf5",
    "write_ann_hdf5",
    "read_idx",
    "read_labels",
    "read_float32",
    "split_dataset_path",
]

_VECS_VALUE_DTYPES = {".fvecs": np.dtype("<f4"), ".ivecs": np.dtype("<i4"), ".bvecs": np.dtype("u1")}
_HDF5_SUFFIXES = (".hdf5", ".h5")
_IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
EXTENSIONS = (".fvecs", ".ivecs", ".bvecs", ".npy", ".hdf5", ".h5", "-ubyte", ".idx",
              "-ubyte.gz", ".idx.gz")
_HEADER_CHECK_ROWS = 1 << 20  # rows of dimension headers compared per step


class VectorFileError(ValueError):
    """A vector file that cannot be read (or written) as asked.

    The message starts with the file name and, where it applies, names the row and
    its byte offset. ``path`` holds the file name.
    """

    def __init__(self, path, message):
        self.path = str(path)
        super().__init__(f"{path}: {message}")


# ----------------------------------------------------------------------------- naming


def _split_dataset(path, dataset):
    """``"a.hdf5:test"`` -> (Path("a.hdf5"), "test"); other paths pass through."""
    text = os.fspath(path)
    for suffix in _HDF5_SUFFIXES:
        marker = suffix + ":"
        at = text.lower().rfind(marker)
        if at >= 0 and at + len(marker) < len(text):
            name = text[at + len(marker):]
            if dataset is not None and dataset != name:
                raise ValueError(
                    f"{text}: the path names dataset {name!r} but dataset={dataset!r} was also given"
                )
            return Path(text[: at + len(suffix)]), name
    return Path(text), dataset


def _format_of(path: Path) -> str:
    name = path.name.lower()
    for ending in ("-ubyte.gz", ".idx.gz", "-ubyte", ".idx"):
        if name.endswith(ending):
            return "idx"
    suffix = path.suffix.lower()
    if suffix in _VECS_VALUE_DTYPES:
        return suffix
    if suffix == ".npy":
        return ".npy"
    if suffix in _HDF5_SUFFIXES:
        return ".hdf5"
    shown = repr(path.suffix) if path.suffix else "none"
    raise VectorFileError(
        path,
        f"unknown vector file extension ({shown}); expected one of "
        + ", ".join(EXTENSIONS),
    )


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not a vector file")


# ----------------------------------------------------------------------------- fvecs/ivecs/bvecs


def _vecs_layout(path: Path, fmt: str):
    """Dimension, row dtype and number of rows of a TEXMEX file, from its first header."""
    value_dtype = _VECS_VALUE_DTYPES[fmt]
    size = path.stat().st_size
    if size == 0:
        raise VectorFileError(path, f"empty file (0 bytes); a {fmt} file holds at least one row")
    if size < 4:
        raise VectorFileError(
            path, f"truncated: {size} bytes, but a row starts with a 4-byte dimension header (row 0, byte offset 0)"
        )
    with open(path, "rb") as f:
        (d,) = struct.unpack("<i", f.read(4))
    if d <= 0:
        raise VectorFileError(
            path, f"row 0 (byte offset 0) has dimension header {d}; it must be a positive integer "
            f"(is this really a {fmt} file?)"
        )
    row_dtype = np.dtype([("d", "<i4"), ("v", value_dtype, (d,))])
    n_rows, rest = divmod(size, row_dtype.itemsize)
    return d, row_dtype, n_rows, rest, size


def _check_vecs_headers(path, fmt, headers, d, row_bytes, first_row=0):
    """Raise at the first row whose dimension header is not ``d``."""
    for start in range(0, headers.shape[0], _HEADER_CHECK_ROWS):
        block = np.asarray(headers[start:start + _HEADER_CHECK_ROWS])
        bad = np.flatnonzero(block != d)
        if bad.size:
            row = first_row + start + int(bad[0])
            raise VectorFileError(
                path,
                f"row {row} (byte offset {row * row_bytes}) has dimension header {int(block[bad[0]])}, "
                f"but row 0 has {d}; every row of a {fmt} file must have the same dimension",
            )


def _open_vecs(path: Path, fmt: str, mmap: bool, check: bool):
    d, row_dtype, n_rows, rest, size = _vecs_layout(path, fmt)
    rows = (np.memmap(path, dtype=row_dtype, mode="r", shape=(n_rows,)) if n_rows
            else np.empty(0, dtype=row_dtype))
    if rest:
        # A header that disagrees earlier on is the real cause; report it first.
        _check_vecs_headers(path, fmt, rows["d"], d, row_dtype.itemsize)
        raise VectorFileError(
            path,
            f"truncated: {size} bytes is not a whole number of {row_dtype.itemsize}-byte rows "
            f"(d={d}); row {n_rows} at byte offset {n_rows * row_dtype.itemsize} has only "
            f"{rest} of its {row_dtype.itemsize} bytes",
        )
    if check:
        _check_vecs_headers(path, fmt, rows["d"], d, row_dtype.itemsize)
    values = rows["v"]
    if not mmap:
        values = np.array(values)
    return values


# ----------------------------------------------------------------------------- npy


def _npy_header(path: Path):
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        except (ValueError, OSError, SyntaxError, struct.error) as exc:
            raise VectorFileError(path, f"not a valid .npy file: {exc}") from None
        offset = f.tell()
    return shape, fortran, dtype, offset


def _open_npy(path: Path, mmap: bool, need_2d: bool = True):
    shape, fortran, dtype, offset = _npy_header(path)
    if dtype.hasobject:
        raise VectorFileError(
            path, f"holds Python objects (dtype {dtype}); only numeric arrays are read, never pickles"
        )
    if dtype.kind not in "biuf":
        raise VectorFileError(path, f"has non-numeric dtype {dtype}; expected numbers")
    if need_2d and len(shape) != 2:
        raise VectorFileError(
            path, f"holds an array of shape {shape}; a vector file must be 2-D (rows, dimensions)"
        )
    size = path.stat().st_size
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size - offset < expected:
        if shape and not fortran:
            row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
            row = (size - offset) // row_bytes if row_bytes else 0
            where = f"; row {row} at byte offset {offset + row * row_bytes} is the first incomplete row"
        else:
            where = ""
        raise VectorFileError(
            path,
            f"truncated: the header promises shape {shape} of {dtype} ({expected} bytes of data from "
            f"byte offset {offset}), but only {size - offset} bytes follow{where}",
        )
    if expected == 0:
        return np.zeros(shape, dtype=dtype)
    if mmap:
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape,
                         order="F" if fortran else "C")
    return np.load(path, allow_pickle=False)


# ----------------------------------------------------------------------------- hdf5


def _import_h5py(path):
    try:
        import h5py
    except ImportError:
        raise ImportError(
            f"{path}: reading and writing .hdf5 files needs h5py; install it with "
            "pip install \"ivfpq[hdf5]\""
        ) from None
    return h5py


def _open_h5(path: Path):
    h5py = _import_h5py(path)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        size = path.stat().st_size
        raise VectorFileError(
            path, f"not a readable HDF5 file ({size} bytes; truncated, or not HDF5): {exc}"
        ) from None


def _hdf5_dataset(path: Path, name: str, mmap: bool, need_2d: bool = True):
    with _open_h5(path) as f:
        if name not in f:
            have = ", ".join(sorted(f.keys())) or "none"
            raise VectorFileError(path, f"has no dataset {name!r}; its datasets: {have}")
        ds = f[name]
        if not hasattr(ds, "shape"):
            raise VectorFileError(path, f"{name!r} is a group, not a dataset")
        if ds.dtype.kind not in "biuf":
            raise VectorFileError(path, f"dataset {name!r} has non-numeric dtype {ds.dtype}")
        if need_2d and len(ds.shape) != 2:
            raise VectorFileError(
                path, f"dataset {name!r} has shape {ds.shape}; vectors must be 2-D (rows, dimensions)"
            )
        offset = ds.id.get_offset()
        plain = ds.chunks is None and ds.compression is None and offset is not None
        if mmap and plain and ds.size:
            end = offset + ds.size * ds.dtype.itemsize
            if end > path.stat().st_size:
                raise VectorFileError(
                    path, f"truncated: dataset {name!r} should span bytes {offset}..{end} "
                    f"but the file has {path.stat().st_size} bytes"
                )
            return np.memmap(path, dtype=ds.dtype, mode="r", offset=offset, shape=ds.shape)
        try:
            return ds[...]
        except OSError as exc:
            raise VectorFileError(path, f"cannot read dataset {name!r}: {exc}") from None


def read_ann_hdf5(path, *, mmap=True):
    """Read an ann-benchmarks file: ``train``, ``test``, ``neighbors``, ``distances``.

    Parameters
    ----------
    path : str or Path
    mmap : bool, default=True
        Memory-map contiguous, uncompressed datasets instead of reading them.

    Returns
    -------
    dict
        The datasets present (arrays), plus ``"distance"`` (the metric attribute, or
        None when the file has none).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ivfpq.io import write_ann_hdf5, read_ann_hdf5
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.hdf5")
    >>> write_ann_hdf5(path, train=np.eye(3, dtype=np.float32), test=np.ones((1, 3), np.float32))
    >>> data = read_ann_hdf5(path)
    >>> data["train"].shape, data["test"].shape, data["distance"]
    ((3, 3), (1, 3), 'euclidean')
    """
    path = Path(os.fspath(path))
    _check_readable(path)
    with _open_h5(path) as f:
        names = [n for n in ("train", "test", "neighbors", "distances") if n in f]
        distance = f.attrs.get("distance")
    if isinstance(distance, bytes):
        distance = distance.decode()
    out = {name: _hdf5_dataset(path, name, mmap) for name in names}
    out["distance"] = None if distance is None else str(distance)
    return out


def write_ann_hdf5(path, *, train=None, test=None, neighbors=None, distances=None,
                   distance="euclidean"):
    """Write arrays in the ann-benchmarks layout (each given array becomes a dataset).

    Parameters
    ----------
    path : str or Path
    train, test : array-like of shape (n, d), optional
        Base vectors and queries (stored as float32).
    neighbors : array-like of shape (n_queries, k), optional
        Ids of the true nearest neighbours (stored as int32).
    distances : array-like of shape (n_queries, k), optional
    distance : str, default="euclidean"
        The file's ``distance`` attribute ("euclidean" or "angular").

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ivfpq.io import write_ann_hdf5, read_vectors
    >>> path = os.path.join(tempfile.mkdtemp(), "toy.hdf5")
    >>> write_ann_hdf5(path, train=np.zeros((4, 2), np.float32))
    >>> read_vectors(path).shape
    (4, 2)
    """
    path = Path(os.fspath(path))
    arrays = {}
    for name, value, dtype in (("train", train, np.float32), ("test", test, np.float32),
                               ("neighbors", neighbors, np.int32), ("distances", distances, np.float32)):
        if value is not None:
            arrays[name] = _as_2d(value, name, path).astype(dtype, copy=False)
    if not arrays:
        raise ValueError(f"{path}: nothing to write; give at least one of train, test, neighbors, distances")
    h5py = _import_h5py(path)

    def write(tmp):
        with h5py.File(tmp, "w") as f:
            f.attrs["distance"] = distance
            for name, array in arrays.items():
                f.create_dataset(name, data=array)

    _atomic_write(path, write)


# ----------------------------------------------------------------------------- idx


def read_idx(path):
    """Read an IDX file (the MNIST format), gzip-compressed or not, in its own shape.

    Parameters
    ----------
    path : str or Path
        ``*-ubyte``, ``*.idx``, or the same with ``.gz``.

    Returns
    -------
    ndarray
        uint8 images of shape (n, rows, cols), labels of shape (n,), or whatever the
        header declares.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ivfpq.io import read_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "tiny-labels-idx1-ubyte")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 1, 4]))
    >>> read_idx(path).tolist()
    [7, 1, 4]
    """
    path = Path(os.fspath(path))
    _check_readable(path)
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise VectorFileError(path, f"cannot be decompressed: {exc}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise VectorFileError(
            path, "not an IDX file: the first 4 bytes must be 0, 0, a type code and the number of dimensions"
        )
    dtype, ndim = _IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise VectorFileError(path, f"truncated: the header needs {header} bytes, the file has {len(raw)}")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header < expected:
        row_bytes = int(np.prod(dims[1:], dtype=np.int64)) * dtype.itemsize
        row = (len(raw) - header) // row_bytes if row_bytes else 0
        raise VectorFileError(
            path, f"truncated: the header promises shape {tuple(dims)} ({expected} bytes from byte offset "
            f"{header}, uncompressed) but only {len(raw) - header} bytes follow; row {row} is incomplete"
        )
    return np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=header).reshape(dims)


# ----------------------------------------------------------------------------- public readers


def read_vectors(path, *, dataset=None, mmap=True, check=True):
    """Read a file of vectors as a 2-D array (memory-mapped where the format allows).

    Parameters
    ----------
    path : str or Path
        ``.fvecs``, ``.ivecs``, ``.bvecs``, ``.npy``, ``.hdf5``/``.h5`` (optionally
        ``file.hdf5:dataset``), or IDX (``*-ubyte[.gz]``, ``*.idx[.gz]``).
    dataset : str, optional
        For HDF5: which dataset; default ``"train"``.
    mmap : bool, default=True
        Return a read-only memory map instead of reading the file into memory.
    check : bool, default=True
        For ``.*vecs``: compare every row's dimension header with the first (reads the
        headers once). With ``check=False`` only the size is checked;
        :func:`iter_vector_blocks` checks the headers block by block.

    Returns
    -------
    ndarray of shape (n, d)
        In the file's own dtype (float32 for ``.fvecs``, int32 for ``.ivecs``, uint8 for
        ``.bvecs`` and IDX images, as stored for ``.npy``/``.hdf5``).

    Raises
    ------
    VectorFileError
        Unknown extension, truncated file, rows of different dimension, not 2-D.
    FileNotFoundError
        The file does not exist.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ivfpq.io import write_vectors, read_vectors
    >>> path = os.path.join(tempfile.mkdtemp(), "x.fvecs")
    >>> write_vectors(path, np.arange(6, dtype=np.float32).reshape(3, 2))
    >>> read_vectors(path).tolist()
    [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    """
    path, dataset = _split_dataset(path, dataset)
    fmt = _format_of(path)
    _check_readable(path)
    if fmt in _VECS_VALUE_DTYPES:
        return _open_vecs(path, fmt, mmap, check)
    if fmt == ".npy":
        return _open_npy(path, mmap)
    if fmt == ".hdf5":
        return _hdf5_dataset(path, dataset or "train", mmap)
    images = read_idx(path)
    if images.ndim < 2:
        raise VectorFileError(
            path, f"holds a 1-D IDX array of shape {images.shape} (labels?); vectors must be 2-D or more"
        )
    return images.reshape(images.shape[0], -1)


def read_labels(path):
    """Read a 1-D array (class labels, ids) from ``.npy``, IDX, or a one-column file.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ivfpq.io import read_labels
    >>> path = os.path.join(tempfile.mkdtemp(), "y.npy")
    >>> np.save(path, np.array([2, 0, 1]))
    >>> read_labels(path).tolist()
    [2, 0, 1]
    """
    path, dataset = _split_dataset(path, None)
    fmt = _format_of(path)
    _check_readable(path)
    if fmt == ".npy":
        values = _open_npy(path, mmap=False, need_2d=False)
    elif fmt == "idx":
        values = read_idx(path)
    elif fmt == ".hdf5":
        values = np.asarray(_hdf5_dataset(path, dataset or "labels", mmap=False, need_2d=False))
    else:
        values = read_vectors(path, mmap=False)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise VectorFileError(path, f"holds shape {values.shape}; labels must be 1-D")
    return np.asarray(values)


def vector_file_shape(path, *, dataset=None):
    """``(n, d)`` of a vector file without reading its values (headers only).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ivfpq.io import write_vectors, vector_file_shape
    >>> path = os.path.join(tempfile.mkdtemp(), "x.bvecs")
    >>> write_vectors(path, np.zeros((5, 3), dtype=np.uint8))
    >>> vector_file_shape(path)
    (5, 3)
    """
    return tuple(read_vectors(path, dataset=dataset, check=False).shape)


def iter_vector_blocks(path, block_rows=65536, *, dataset=None, dtype=np.float32):
    """Stream a vector file in blocks of rows without loading it whole.

    Parameters
    ----------
    path : str or Path
        Any format :func:`read_vectors` reads.
    block_rows : int, default=65536
        Rows per block (the last block may be shorter).
    dataset : str, optional
        For HDF5, which dataset (default ``"train"``).
    dtype : numpy dtype or None, default=float32
        Each block is converted to a C-contiguous array of this dtype; None keeps the
        file's dtype.

    Yields
    ------
    start : int
        Index of the block's first row.
    block : ndarray of shape (rows, d)
        A private copy: only one block at a time is in memory.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ivfpq.io import write_vectors, iter_vector_blocks
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> write_vectors(path, np.ones((5, 2)))
    >>> [(start, block.shape) for start, block in iter_vector_blocks(path, block_rows=2)]
    [(0, (2, 2)), (2, (2, 2)), (4, (1, 2))]
    """
    if isinstance(block_rows, bool) or not isinstance(block_rows, (int, np.integer)) or block_rows < 1:
        raise ValueError(f"block_rows must be an integer >= 1, got {block_rows!r}")
    file_path, _ = _split_dataset(path, dataset)
    fmt = _format_of(file_path)
    values = read_vectors(path, dataset=dataset, check=False)
    headers = None
    if fmt in _VECS_VALUE_DTYPES:
        d = values.shape[1]
        row_bytes = 4 + d * _VECS_VALUE_DTYPES[fmt].itemsize
        headers = np.memmap(file_path, dtype=np.dtype([("d", "<i4"), ("v", f"V{row_bytes - 4}")]),
                            mode="r", shape=(values.shape[0],))["d"]
    for start in range(0, values.shape[0], block_rows):
        stop = min(values.shape[0], start + block_rows)
        if headers is not None:
            _check_vecs_headers(file_path, fmt, headers[start:stop], d, row_bytes, first_row=start)
        yield start, np.array(values[start:stop], dtype=dtype, order="C", copy=True)


def split_dataset_path(path):
    """``"a.hdf5:test"`` -> ``(Path("a.hdf5"), "test")``; any other path -> ``(Path(path), None)``.

    Examples
    --------
    >>> from ivfpq.io import split_dataset_path
    >>> split_dataset_path("data/glove.hdf5:test")
    (PosixPath('data/glove.hdf5'), 'test')
    >>> split_dataset_path("base.fvecs")
    (PosixPath('base.fvecs'), None)
    """
    return _split_dataset(path, None)


def read_float32(path, *, dataset=None, block_rows=None, callback=None):
    """Read a whole vector file into memory as float32, refusing NaN and infinity.

    The file is read block by block (:func:`iter_vector_blocks`), so only the result
    and one block are in memory, and each block is checked as it arrives.

    Parameters
    ----------
    path : str or Path
        Any file :func:`read_vectors` reads (``file.hdf5:dataset`` too).
    dataset : str, optional
        For HDF5: which dataset; default ``"train"``.
    block_rows : int, optional
        Rows per block; default: about 16 MB of float32 per block.
    callback : callable, optional
        Called as ``callback(rows_read, n_rows)`` after each block (a progress bar).

    Returns
    -------
    ndarray of shape (n, d), float32

    Raises
    ------
    VectorFileError
        Naming the first row that holds NaN or infinity, and what :func:`read_vectors`
        raises.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ivfpq.io import write_vectors, read_float32
    >>> path = os.path.join(tempfile.mkdtemp(), "x.bvecs")
    >>> write_vectors(path, np.arange(6, dtype=np.uint8).reshape(3, 2))
    >>> read_float32(path, block_rows=2).tolist()
    [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    """
    n, d = vector_file_shape(path, dataset=dataset)
    out = np.empty((n, d), dtype=np.float32)
    if block_rows is None:
        block_rows = max(1, (16 << 20) // max(1, 4 * d))
    for start, block in iter_vector_blocks(path, block_rows, dataset=dataset):
        finite = np.isfinite(block).all(axis=1)
        if not finite.all():
            bad = start + int(np.flatnonzero(~finite)[0])
            raise VectorFileError(path, f"row {bad} holds NaN or infinity; every value must be finite")
        out[start:start + block.shape[0]] = block
        if callback is not None:
            callback(start + block.shape[0], n)
    return out


# ----------------------------------------------------------------------------- writers


def _as_2d(X, name, path):
    arr = np.asarray(X)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{path}: {name} has dtype {arr.dtype}; only real numbers can be written")
    if arr.ndim != 2:
        raise ValueError(f"{path}: {name} must be 2-D (rows, dimensions), got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{path}: {name} has shape {arr.shape}; at least one row and one column required")
    return arr


def _check_integral(arr, path, fmt, lo, hi):
    """Refuse values a TEXMEX integer format cannot hold exactly."""
    if arr.dtype.kind == "f":
        for start in range(0, arr.shape[0], 65536):
            block = np.asarray(arr[start:start + 65536])
            if not np.isfinite(block).all() or (block != np.round(block)).any():
                raise ValueError(f"{path}: {fmt} stores integers, but the array has non-integer values")
    if arr.size:
        low, high = arr.min(), arr.max()
        if low < lo or high > hi:
            raise ValueError(
                f"{path}: {fmt} stores values in [{lo}, {hi}], but the array spans [{low}, {high}]"
            )


def _atomic_write(path: Path, write):
    """Call ``write(tmp_path)`` then rename over ``path``; remove the temp file on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise


def write_vectors(path, X, *, dataset=None, block_rows=65536):
    """Write a 2-D array in the format the extension names.

    ``.fvecs`` stores float32, ``.ivecs`` int32 and ``.bvecs`` uint8 (integer formats
    refuse values they cannot hold exactly); ``.npy`` keeps the dtype; ``.hdf5`` writes
    one dataset (default ``"train"``) to a new file. Rows are written in blocks, so
    ``X`` may be a memory map larger than memory. The file appears only once complete.

    Parameters
    ----------
    path : str or Path
    X : array-like of shape (n, d)
    dataset : str, optional
        For HDF5: the dataset name (default ``"train"``; ``file.hdf5:name`` also works).
    block_rows : int, default=65536

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from ivfpq.io import write_vectors, read_vectors
    >>> path = os.path.join(tempfile.mkdtemp(), "ids.ivecs")
    >>> write_vectors(path, [[3, 1], [2, 0]])
    >>> read_vectors(path).tolist()
    [[3, 1], [2, 0]]
    """
    path, dataset = _split_dataset(path, dataset)
    fmt = _format_of(path)
    if fmt == "idx":
        raise VectorFileError(path, "IDX files are read-only here; write .npy, .fvecs or .hdf5 instead")
    X = _as_2d(X, "X", path)
    n, d = X.shape

    if fmt in _VECS_VALUE_DTYPES:
        value_dtype = _VECS_VALUE_DTYPES[fmt]
        if fmt == ".ivecs":
            _check_integral(X, path, fmt, -(2**31), 2**31 - 1)
        elif fmt == ".bvecs":
            _check_integral(X, path, fmt, 0, 255)
        row_dtype = np.dtype([("d", "<i4"), ("v", value_dtype, (d,))])

        def write(tmp):
            with open(tmp, "wb") as f:
                for start in range(0, n, block_rows):
                    block = np.asarray(X[start:start + block_rows])
                    rows = np.empty(block.shape[0], dtype=row_dtype)
                    rows["d"] = d
                    rows["v"] = block
                    rows.tofile(f)

    elif fmt == ".npy":

        def write(tmp):
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=X.dtype, shape=X.shape)
            for start in range(0, n, block_rows):
                out[start:start + block_rows] = X[start:start + block_rows]
            out.flush()
            del out

    else:
        h5py = _import_h5py(path)

        def write(tmp):
            with h5py.File(tmp, "w") as f:
                out = f.create_dataset(dataset or "train", shape=X.shape, dtype=X.dtype)
                for start in range(0, n, block_rows):
                    out[start:start + block_rows] = np.asarray(X[start:start + block_rows])

    _atomic_write(path, write)
