"""Saving and loading: versioned ``.npz`` files, written atomically, never pickled.

Every persistable class (``KMeans``, the quantizers, the indexes) declares a format
name and a version with :func:`register_format` and implements two methods::

    obj._to_arrays()                      -> (meta: dict, arrays: dict)
    cls._from_arrays(archive: Archive)    -> a new object

``meta`` holds parameters and scalar attributes; it is stored as one JSON string.
``arrays`` holds numeric or string NumPy arrays only, so that the file loads with
``allow_pickle=False``. A file therefore holds::

    ivfpq_format   0-d str     the format name, e.g. "ivf_flat"
    ivfpq_version  0-d int64   the format's version
    ivfpq_meta     0-d str     JSON: parameters and scalar attributes
    <name>         arrays      whatever the class stores

This module sits beside ``_validation`` (below ``cluster``) rather than under
``index/``, because ``KMeans`` in the lower ``cluster`` layer saves through it too,
and imports must point downward. Classes register themselves when their module is
imported; ``ivfpq/__init__.py`` imports them all, so :func:`load` knows every format.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib

import numpy as np

from ._validation import check_path

__all__ = [
    "FileFormatError", "Archive", "Persistable", "register_format", "save", "load", "load_nested",
    "read_archive",
]

_FORMAT_KEY = "ivfpq_format"
_VERSION_KEY = "ivfpq_version"
_META_KEY = "ivfpq_meta"
_RESERVED = (_FORMAT_KEY, _VERSION_KEY, _META_KEY)

# format name -> class; filled by @register_format when each module is imported
_FORMATS: dict = {}


class FileFormatError(ValueError):
    """A file cannot be loaded: not an ivfpq file, unknown format or version,
    truncated or corrupted, or a different kind of object than the one asked for."""


def register_format(name: str, version: int):
    """Class decorator: ``name`` and ``version`` identify the class's files."""

    def decorate(cls):
        if name in _FORMATS and _FORMATS[name] is not cls:
            raise RuntimeError(f"format name {name!r} is already registered by {_FORMATS[name].__name__}")
        cls._format_name = name
        cls._format_version = int(version)
        _FORMATS[name] = cls
        return cls

    return decorate


class Archive:
    """The contents of one file, with checked accessors for ``_from_arrays``."""

    def __init__(self, path, format_name, version, meta, arrays):
        self.path = path
        self.format_name = format_name
        self.version = version
        self.meta = meta
        self.arrays = arrays

    def param(self, name, default=KeyError):
        if name in self.meta:
            return self.meta[name]
        if default is KeyError:
            raise FileFormatError(
                f"{self.path}: the {self.format_name!r} file lacks the entry {name!r}; it is damaged "
                "or was not written by ivfpq"
            )
        return default

    def has(self, name) -> bool:
        return name in self.arrays

    def array(self, name, *, dtype=None, ndim=None, shape=None) -> np.ndarray:
        """The stored array ``name``; its dtype kind, dimension and shape are checked."""
        if name not in self.arrays:
            raise FileFormatError(
                f"{self.path}: the {self.format_name!r} file lacks the array {name!r}; it is damaged "
                "or was not written by ivfpq"
            )
        value = self.arrays[name]
        if dtype is not None and value.dtype != np.dtype(dtype):
            raise FileFormatError(
                f"{self.path}: array {name!r} has dtype {value.dtype}, expected {np.dtype(dtype)}"
            )
        if ndim is not None and value.ndim != ndim:
            raise FileFormatError(f"{self.path}: array {name!r} is {value.ndim}-D, expected {ndim}-D")
        if shape is not None:
            ok = len(shape) == value.ndim and all(s is None or s == v for s, v in zip(shape, value.shape))
            if not ok:
                raise FileFormatError(
                    f"{self.path}: array {name!r} has shape {value.shape}, expected {tuple(shape)}"
                )
        return value


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot store {type(value).__name__} in an ivfpq file's metadata")


def save(obj, path) -> str:
    """Write ``obj`` (a registered class) to ``path`` atomically; return the path.

    The arrays go to a temporary file in the same folder, which is flushed, synced and
    then renamed over ``path``, so a reader never sees a half-written file and a
    crash leaves any previous file intact. ``path`` is used as given (no suffix added).
    """
    path = os.fspath(check_path(path, "path"))
    meta, arrays = obj._to_arrays()
    payload = {}
    for name, value in arrays.items():
        if name in _RESERVED:
            raise RuntimeError(f"array name {name!r} is reserved")
        value = np.asarray(value)
        if value.dtype.kind not in "biufU":
            raise TypeError(f"array {name!r} has dtype {value.dtype}; only numbers and strings are stored")
        payload[name] = value
    payload[_FORMAT_KEY] = np.array(obj._format_name)
    payload[_VERSION_KEY] = np.array(obj._format_version, dtype=np.int64)
    payload[_META_KEY] = np.array(json.dumps(_jsonable(meta), allow_nan=True))

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable; not every platform allows opening a folder
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, KeyError, IndexError)


def read_archive(path) -> Archive:
    """Read and check a file written by :func:`save`; the object is not built yet."""
    path = os.fspath(check_path(path, "path"))
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a folder, not an ivfpq file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] != b"PK":
        raise FileFormatError(
            f"{path!r} is not an ivfpq file (not an .npz archive; it starts with {head!r})"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            names = list(data.files)
            if _FORMAT_KEY not in names or _VERSION_KEY not in names:
                raise FileFormatError(
                    f"{path!r} is an .npz archive but not an ivfpq file (it lacks "
                    f"{_FORMAT_KEY!r}/{_VERSION_KEY!r}; its arrays are {sorted(names)[:8]})"
                )
            # Reading every member in full makes zipfile check each member's CRC-32.
            arrays = {name: data[name] for name in names}
    except FileFormatError:
        raise
    except _READ_ERRORS as exc:
        raise FileFormatError(
            f"{path!r} is truncated or corrupted and cannot be read ({type(exc).__name__}: {exc})"
        ) from exc

    format_name = arrays.pop(_FORMAT_KEY)
    version = arrays.pop(_VERSION_KEY)
    meta_text = arrays.pop(_META_KEY, None)
    if format_name.dtype.kind != "U" or format_name.ndim != 0:
        raise FileFormatError(f"{path!r}: the format entry is damaged ({format_name.dtype}, shape {format_name.shape})")
    if version.dtype.kind not in "iu" or version.ndim != 0:
        raise FileFormatError(f"{path!r}: the version entry is damaged ({version.dtype}, shape {version.shape})")
    if meta_text is None or meta_text.dtype.kind != "U" or meta_text.ndim != 0:
        raise FileFormatError(f"{path!r}: the metadata entry is missing or damaged")
    try:
        meta = json.loads(str(meta_text))
    except ValueError as exc:
        raise FileFormatError(f"{path!r}: the metadata is not valid JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise FileFormatError(f"{path!r}: the metadata is not a JSON object")
    return Archive(path, str(format_name), int(version), meta, arrays)


def _build(archive: Archive, cls):
    if archive.version < 1 or archive.version > cls._format_version:
        raise FileFormatError(
            f"{archive.path!r} holds {archive.format_name!r} format version {archive.version}, but "
            f"this ivfpq reads versions 1 to {cls._format_version}; it was written by a newer "
            "ivfpq (upgrade) or is damaged"
        )
    try:
        return cls._from_arrays(archive)
    except FileFormatError:
        raise
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise FileFormatError(
            f"{archive.path!r}: the {archive.format_name!r} file is inconsistent and cannot be loaded "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def params_state(obj):
    """(meta, arrays) of ``obj.get_params()``: arrays apart, unstorable values as None.

    A Generator or RandomState given as ``random_state`` cannot be stored; the loaded
    object gets None there (its fitted state is stored in full, so nothing is lost
    but the ability to repeat a fit with the same stream).
    """
    meta, arrays = {"params": {}, "array_params": []}, {}
    for name, value in obj.get_params().items():
        if isinstance(value, np.ndarray):
            arrays["param." + name] = value
            meta["array_params"].append(name)
        elif value is None or isinstance(value, (bool, int, float, str, np.integer, np.floating, np.bool_)):
            meta["params"][name] = value
        else:
            meta["params"][name] = None
    return meta, arrays


def params_from_state(cls, archive: Archive):
    """Keyword arguments for ``cls(...)`` from what :func:`params_state` stored."""
    known = set(cls._param_names())
    stored = archive.param("params")
    if not isinstance(stored, dict):
        raise FileFormatError(f"{archive.path!r}: the parameters entry is damaged")
    params = {k: v for k, v in stored.items() if k in known}
    for name in archive.param("array_params"):
        if name in known:
            params[name] = archive.array("param." + name)
    return params


def attributes_state(obj, names, meta, arrays):
    """Store the fitted attributes ``names`` of ``obj`` into ``meta`` and ``arrays``.

    Arrays go to ``arrays["attr." + name]``; None, numbers and strings to
    ``meta["attrs"]``. A persistable attribute (e.g. a fitted sub-estimator) is nested.
    """
    attrs = meta.setdefault("attrs", {})
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, np.ndarray):
            arrays["attr." + name] = value
            attrs[name] = {"kind": "array"}
        elif isinstance(value, Persistable):
            inner_meta, inner_arrays = value._to_arrays()
            attrs[name] = {"kind": "object", "format": value._format_name,
                           "version": value._format_version, "meta": inner_meta}
            arrays.update({f"obj.{name}.{k}": v for k, v in inner_arrays.items()})
        else:
            attrs[name] = {"kind": "value", "value": _jsonable(value)}


def restore_attributes(obj, archive: Archive, names):
    """Set the attributes stored by :func:`attributes_state` on ``obj``."""
    attrs = archive.param("attrs")
    for name in names:
        entry = attrs.get(name) if isinstance(attrs, dict) else None
        if not isinstance(entry, dict):
            raise FileFormatError(f"{archive.path!r}: the attribute {name!r} is missing")
        kind = entry.get("kind")
        if kind == "array":
            value = archive.array("attr." + name)
        elif kind == "object":
            cls = _FORMATS.get(entry.get("format"))
            if cls is None:
                raise FileFormatError(f"{archive.path!r}: attribute {name!r} has an unknown format")
            head = f"obj.{name}."
            inner = Archive(
                archive.path, cls._format_name, int(entry.get("version", 0)), entry.get("meta") or {},
                {k[len(head):]: v for k, v in archive.arrays.items() if k.startswith(head)},
            )
            value = _build(inner, cls)
        elif kind == "value":
            value = entry.get("value")
        else:
            raise FileFormatError(f"{archive.path!r}: the attribute {name!r} is damaged")
        setattr(obj, name, value)


def load_nested(archive: Archive, prefix: str, cls):
    """Build a ``cls`` object stored inside another object's file under ``prefix``.

    The outer ``_to_arrays`` stores ``meta[prefix] = {"format", "version", "meta"}``
    and the inner arrays as ``prefix + "." + name``.
    """
    header = archive.param(prefix)
    if not isinstance(header, dict) or header.get("format") != cls._format_name:
        raise FileFormatError(
            f"{archive.path!r}: the nested {prefix!r} entry is not a {cls._format_name!r} object"
        )
    head = prefix + "."
    inner = Archive(
        archive.path,
        cls._format_name,
        int(header.get("version", 0)),
        header.get("meta") or {},
        {name[len(head):]: value for name, value in archive.arrays.items() if name.startswith(head)},
    )
    return _build(inner, cls)


def load(path):
    """Load any object saved with ``save(path)``: an index, a quantizer or ``KMeans``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    The object, of the class that wrote the file.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    FileFormatError (a ValueError)
        If the file is not an ivfpq file, is truncated or corrupted, holds an unknown
        format name or a version newer than this ivfpq reads.

    Examples
    --------
    >>> import numpy as np, os, tempfile, ivfpq
    >>> X = np.random.default_rng(0).standard_normal((200, 4), dtype=np.float32)
    >>> model = ivfpq.KMeans(n_clusters=3, random_state=0).fit(X)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> _ = model.save(path)
    >>> np.array_equal(ivfpq.load(path).cluster_centers_, model.cluster_centers_)
    True
    """
    archive = read_archive(path)
    cls = _FORMATS.get(archive.format_name)
    if cls is None:
        known = ", ".join(sorted(_FORMATS)) or "none"
        raise FileFormatError(
            f"{archive.path!r} holds an object of format {archive.format_name!r}, which this ivfpq "
            f"does not know (known formats: {known})"
        )
    return _build(archive, cls)


class Persistable:
    """Mixin giving a registered class ``save(path)`` and ``Class.load(path)``."""

    def save(self, path):
        """Write this object to ``path`` (a versioned ``.npz``, written atomically).

        Returns the path. Load it back with ``ivfpq.load(path)`` or ``type(obj).load(path)``.
        """
        return save(self, path)

    @classmethod
    def load(cls, path):
        """Load an object of this class saved with ``save``; other kinds are refused."""
        archive = read_archive(path)
        if archive.format_name != cls._format_name:
            raise FileFormatError(
                f"{archive.path!r} holds a {archive.format_name!r} object, not a "
                f"{cls._format_name!r} ({cls.__name__}); load it with ivfpq.load(path)"
            )
        return _build(archive, cls)
