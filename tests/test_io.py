"""Vector files: round-trips, memory-mapped streaming, and every error path."""

import gzip
import struct
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivfpq.datasets import data_root, dataset_files, load_dataset
from ivfpq.io import (
    VectorFileError,
    iter_vector_blocks,
    read_ann_hdf5,
    read_idx,
    read_labels,
    read_vectors,
    vector_file_shape,
    write_ann_hdf5,
    write_vectors,
)

h5py = pytest.importorskip("h5py")

RNG = np.random.default_rng(0)
FLOATS = RNG.standard_normal((37, 5)).astype(np.float32)
INTS = RNG.integers(-(2**31), 2**31 - 1, size=(11, 4)).astype(np.int32)
BYTES = RNG.integers(0, 256, size=(9, 6)).astype(np.uint8)


def _fvecs_bytes(rows):
    out = b""
    for row in rows:
        out += struct.pack("<i", len(row)) + np.asarray(row, dtype="<f4").tobytes()
    return out


# ----------------------------------------------------------------------------- round-trips


@pytest.mark.parametrize(
    "name, array",
    [("a.fvecs", FLOATS), ("a.ivecs", INTS), ("a.bvecs", BYTES), ("a.npy", FLOATS),
     ("a.npy", INTS), ("a.hdf5", FLOATS), ("a.h5", BYTES)],
)
def test_round_trip_keeps_values_and_dtype(tmp_path, name, array):
    path = tmp_path / name
    write_vectors(path, array)
    back = read_vectors(path)
    assert back.dtype == array.dtype
    assert back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert vector_file_shape(path) == array.shape
    assert list(tmp_path.iterdir()) == [path]  # the temporary file is gone


def test_fvecs_layout_is_texmex(tmp_path):
    path = tmp_path / "x.fvecs"
    write_vectors(path, [[1.0, 2.0], [3.0, 4.0]])
    assert path.read_bytes() == _fvecs_bytes([[1, 2], [3, 4]])


def test_fvecs_matches_the_shared_copy_of_siftsmall():
    try:
        folder = data_root() / "sift10k"
    except FileNotFoundError:
        pytest.skip("shared data not available")
    np.testing.assert_array_equal(read_vectors(folder / "siftsmall_query.fvecs"),
                                  np.load(folder / "query.npy"))
    np.testing.assert_array_equal(read_vectors(folder / "siftsmall_groundtruth.ivecs"),
                                  np.load(folder / "groundtruth.npy"))


def test_float64_written_as_fvecs_becomes_float32(tmp_path):
    path = tmp_path / "x.fvecs"
    X = RNG.standard_normal((4, 3))
    write_vectors(path, X)
    np.testing.assert_array_equal(read_vectors(path), X.astype(np.float32))


def test_hdf5_dataset_names_and_ann_layout(tmp_path):
    path = tmp_path / "ann.hdf5"
    neighbors = np.argsort(RNG.random((3, 37)), axis=1)[:, :10]
    write_ann_hdf5(path, train=FLOATS, test=FLOATS[:3], neighbors=neighbors,
                   distances=np.zeros((3, 10)), distance="angular")
    data = read_ann_hdf5(path)
    assert data["distance"] == "angular"
    np.testing.assert_array_equal(data["train"], FLOATS)
    np.testing.assert_array_equal(data["neighbors"], neighbors)
    assert data["neighbors"].dtype == np.int32
    np.testing.assert_array_equal(read_vectors(path), FLOATS)  # "train" by default
    np.testing.assert_array_equal(read_vectors(f"{path}:test"), FLOATS[:3])
    np.testing.assert_array_equal(read_vectors(path, dataset="test"), FLOATS[:3])
    write_vectors(tmp_path / "q.hdf5:queries", FLOATS[:2])
    np.testing.assert_array_equal(read_vectors(tmp_path / "q.hdf5", dataset="queries"), FLOATS[:2])


def test_compressed_hdf5_is_read_into_memory(tmp_path):
    path = tmp_path / "c.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("train", data=FLOATS, compression="gzip", chunks=(8, 5))
    back = read_vectors(path)
    assert not isinstance(back, np.memmap)
    np.testing.assert_array_equal(back, FLOATS)


def test_idx_plain_and_gzip(tmp_path):
    images = RNG.integers(0, 256, size=(4, 3, 2)).astype(np.uint8)
    raw = bytes([0, 0, 0x08, 3]) + struct.pack(">III", 4, 3, 2) + images.tobytes()
    (tmp_path / "img-idx3-ubyte").write_bytes(raw)
    (tmp_path / "img-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    for name in ("img-idx3-ubyte", "img-idx3-ubyte.gz"):
        np.testing.assert_array_equal(read_idx(tmp_path / name), images)
        np.testing.assert_array_equal(read_vectors(tmp_path / name), images.reshape(4, 6))
    labels = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 3) + bytes([5, 0, 9])
    (tmp_path / "lab-idx1-ubyte").write_bytes(labels)
    assert read_labels(tmp_path / "lab-idx1-ubyte").tolist() == [5, 0, 9]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 20), d=st.integers(1, 9), fmt=st.sampled_from([".fvecs", ".ivecs", ".bvecs", ".npy", ".hdf5"]),
       seed=st.integers(0, 2**32 - 1))
def test_round_trip_property(tmp_path, n, d, fmt, seed):
    rng = np.random.default_rng(seed)
    if fmt == ".ivecs":
        X = rng.integers(-(2**31), 2**31 - 1, size=(n, d), dtype=np.int64).astype(np.int32)
    elif fmt == ".bvecs":
        X = rng.integers(0, 256, size=(n, d)).astype(np.uint8)
    else:
        X = (rng.standard_normal((n, d)) * 10.0 ** rng.integers(-5, 6)).astype(np.float32)
    path = tmp_path / f"p{fmt}"
    write_vectors(path, X, block_rows=int(rng.integers(1, 8)))
    np.testing.assert_array_equal(read_vectors(path), X)
    np.testing.assert_array_equal(read_vectors(path, mmap=False), X)
    blocks = list(iter_vector_blocks(path, block_rows=int(rng.integers(1, 8)), dtype=None))
    np.testing.assert_array_equal(np.vstack([b for _, b in blocks]), X)


# ----------------------------------------------------------------------------- memory maps


@pytest.mark.parametrize("name", ["m.fvecs", "m.npy", "m.hdf5", "m.bvecs"])
def test_readers_memory_map_and_blocks_stream(tmp_path, name):
    X = BYTES if name.endswith(".bvecs") else FLOATS
    path = tmp_path / name
    write_vectors(path, X)
    mapped = read_vectors(path)
    assert isinstance(mapped, np.memmap) or isinstance(mapped.base, np.memmap)
    assert not mapped.flags.writeable
    starts, blocks = zip(*iter_vector_blocks(path, block_rows=8))
    assert starts == tuple(range(0, X.shape[0], 8))
    assert [b.shape[0] for b in blocks] == [min(8, X.shape[0] - s) for s in starts]
    for block in blocks:  # private float32 copies, one block at a time
        assert block.dtype == np.float32 and block.flags.c_contiguous and block.flags.writeable
        assert not isinstance(block, np.memmap)
    np.testing.assert_array_equal(np.vstack(blocks), X.astype(np.float32))


def test_streaming_checks_headers_lazily_block_by_block(tmp_path):
    path = tmp_path / "lazy.fvecs"
    write_vectors(path, FLOATS)
    raw = bytearray(path.read_bytes())
    row_bytes = 4 + 4 * FLOATS.shape[1]
    raw[30 * row_bytes:30 * row_bytes + 4] = struct.pack("<i", 9)
    path.write_bytes(bytes(raw))
    stream = iter_vector_blocks(path, block_rows=10)
    for _ in range(3):  # rows 0..29 are fine and arrive before the error
        next(stream)
    with pytest.raises(VectorFileError, match=rf"row 30 \(byte offset {30 * row_bytes}\)"):
        next(stream)


def test_block_rows_is_validated(tmp_path):
    write_vectors(tmp_path / "x.npy", FLOATS)
    with pytest.raises(ValueError, match="block_rows"):
        list(iter_vector_blocks(tmp_path / "x.npy", block_rows=0))


# ----------------------------------------------------------------------------- errors


def _error(path, **kwargs):
    with pytest.raises(VectorFileError) as info:
        read_vectors(path, **kwargs)
    message = str(info.value)
    assert message.startswith(str(path)), message
    return message


def test_truncated_fvecs_names_row_and_offset(tmp_path):
    path = tmp_path / "t.fvecs"
    path.write_bytes(_fvecs_bytes(FLOATS)[:-7])
    message = _error(path)
    row_bytes = 4 + 4 * 5
    assert "truncated" in message
    assert f"row 36 at byte offset {36 * row_bytes}" in message
    assert f"only {row_bytes - 7} of its {row_bytes} bytes" in message


def test_dimension_header_disagreement_names_row_and_offset(tmp_path):
    path = tmp_path / "h.fvecs"
    path.write_bytes(_fvecs_bytes([[1, 2, 3], [4, 5, 6], [7, 8, 9]]))
    raw = bytearray(path.read_bytes())
    raw[32:36] = struct.pack("<i", 4)
    path.write_bytes(bytes(raw))
    message = _error(path)
    assert "row 2 (byte offset 32) has dimension header 4, but row 0 has 3" in message


def test_header_disagreement_is_reported_before_truncation(tmp_path):
    # A short row in the middle shifts everything after it: the header is the real cause.
    path = tmp_path / "short.fvecs"
    path.write_bytes(_fvecs_bytes([[1, 2, 3], [4, 5], [6, 7, 8]]))
    assert "row 1 (byte offset 16) has dimension header 2, but row 0 has 3" in _error(path)


@pytest.mark.parametrize("raw, expected", [
    (b"", "empty file (0 bytes)"),
    (b"\x03\x00", "truncated: 2 bytes"),
    (struct.pack("<i", 0) + b"\x00" * 8, "row 0 (byte offset 0) has dimension header 0"),
    (struct.pack("<i", -5), "row 0 (byte offset 0) has dimension header -5"),
    (struct.pack("<i", 1000) + b"\x00" * 8, "row 0 at byte offset 0 has only 12 of its 4004 bytes"),
])
def test_broken_first_row(tmp_path, raw, expected):
    path = tmp_path / "b.ivecs"
    path.write_bytes(raw)
    assert expected in _error(path)


def test_truncated_bvecs(tmp_path):
    path = tmp_path / "t.bvecs"
    write_vectors(path, BYTES)
    path.write_bytes(path.read_bytes()[:-1])
    assert "row 8 at byte offset 80 has only 9 of its 10 bytes" in _error(path)


def test_unknown_extension_and_missing_file(tmp_path):
    (tmp_path / "x.csv").write_text("1,2\n")
    message = _error(tmp_path / "x.csv")
    assert "unknown vector file extension ('.csv')" in message and ".fvecs" in message
    assert "extension (none)" in _error(tmp_path / "noext")
    with pytest.raises(FileNotFoundError, match="missing.fvecs: no such file"):
        read_vectors(tmp_path / "missing.fvecs")
    (tmp_path / "dir.npy").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder"):
        read_vectors(tmp_path / "dir.npy")
    with pytest.raises(VectorFileError, match="unknown vector file extension"):
        write_vectors(tmp_path / "x.txt", FLOATS)


def test_npy_errors(tmp_path):
    path = tmp_path / "t.npy"
    np.save(path, FLOATS)
    header = len(path.read_bytes()) - FLOATS.nbytes
    path.write_bytes(path.read_bytes()[:-5])
    message = _error(path)
    assert f"promises shape (37, 5) of float32 (740 bytes of data from byte offset {header})" in message
    assert f"row 36 at byte offset {header + 36 * 20} is the first incomplete row" in message

    np.save(tmp_path / "one.npy", np.arange(4))
    assert "shape (4,); a vector file must be 2-D" in _error(tmp_path / "one.npy")
    np.save(tmp_path / "obj.npy", np.array([[{}], [1]], dtype=object), allow_pickle=True)
    assert "never pickles" in _error(tmp_path / "obj.npy")
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    assert "not a valid .npy file" in _error(tmp_path / "junk.npy")
    np.save(tmp_path / "s.npy", np.array([["a", "b"]]))
    assert "non-numeric dtype" in _error(tmp_path / "s.npy")


def test_hdf5_errors(tmp_path, monkeypatch):
    path = tmp_path / "e.hdf5"
    write_ann_hdf5(path, test=FLOATS)
    assert "has no dataset 'train'; its datasets: test" in _error(path)
    with h5py.File(tmp_path / "g.hdf5", "w") as f:
        f.create_dataset("train", data=np.arange(5.0))
    assert "dataset 'train' has shape (5,)" in _error(tmp_path / "g.hdf5")
    (tmp_path / "junk.h5").write_bytes(b"\x00" * 100)
    assert "not a readable HDF5 file" in _error(tmp_path / "junk.h5")
    write_vectors(tmp_path / "cut.hdf5", np.ones((500, 8), np.float32))
    (tmp_path / "cut.hdf5").write_bytes((tmp_path / "cut.hdf5").read_bytes()[:-100])
    size = (tmp_path / "cut.hdf5").stat().st_size
    assert f"not a readable HDF5 file ({size} bytes; truncated, or not HDF5)" in _error(tmp_path / "cut.hdf5")
    with pytest.raises(ValueError, match="names dataset 'a' but dataset='b'"):
        read_vectors(f"{path}:a", dataset="b")
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r'pip install "ivfpq\[hdf5\]"'):
        read_vectors(path, dataset="test")


def test_idx_errors(tmp_path):
    (tmp_path / "bad-idx1-ubyte").write_bytes(b"\x01\x02\x03\x04")
    assert "not an IDX file" in _error(tmp_path / "bad-idx1-ubyte")
    raw = bytes([0, 0, 8, 3]) + struct.pack(">III", 4, 3, 2) + bytes(20)
    (tmp_path / "cut-idx3-ubyte").write_bytes(raw)
    assert "row 3 is incomplete" in _error(tmp_path / "cut-idx3-ubyte")
    (tmp_path / "bad-idx3-ubyte.gz").write_bytes(b"not gzip")
    assert "cannot be decompressed" in _error(tmp_path / "bad-idx3-ubyte.gz")
    with pytest.raises(VectorFileError, match="read-only"):
        write_vectors(tmp_path / "out-idx3-ubyte", BYTES)


def test_writer_refuses_what_the_format_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match=r"x.ivecs: .ivecs stores integers"):
        write_vectors(tmp_path / "x.ivecs", [[1.5, 2.0]])
    with pytest.raises(ValueError, match=r"stores values in \[0, 255\]"):
        write_vectors(tmp_path / "x.bvecs", [[0, 256]])
    with pytest.raises(ValueError, match=r"stores values in \[0, 255\]"):
        write_vectors(tmp_path / "x.bvecs", [[-1, 3]])
    with pytest.raises(ValueError, match="must be 2-D"):
        write_vectors(tmp_path / "x.fvecs", [1.0, 2.0])
    with pytest.raises(ValueError, match="at least one row"):
        write_vectors(tmp_path / "x.fvecs", np.zeros((0, 3)))
    with pytest.raises(TypeError, match="only real numbers"):
        write_vectors(tmp_path / "x.npy", np.array([["a"]]))
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing half-written


def test_whole_floats_are_accepted_by_integer_formats(tmp_path):
    write_vectors(tmp_path / "x.ivecs", np.array([[1.0, -2.0]]))
    assert read_vectors(tmp_path / "x.ivecs").tolist() == [[1, -2]]


# ----------------------------------------------------------------------------- dataset folders


def test_dataset_folder_roles(tmp_path):
    write_vectors(tmp_path / "siftsmall_base.fvecs", FLOATS)
    write_vectors(tmp_path / "base.npy", FLOATS * 2)  # .npy wins over other formats
    write_vectors(tmp_path / "siftsmall_query.fvecs", FLOATS[:3])
    write_vectors(tmp_path / "siftsmall_groundtruth.ivecs", INTS[:3, :2])
    np.save(tmp_path / "labels.npy", np.arange(37))
    files = dataset_files(tmp_path)
    assert {role: p.name for role, p in files.items()} == {
        "base": "base.npy", "query": "siftsmall_query.fvecs",
        "groundtruth": "siftsmall_groundtruth.ivecs", "labels": "labels.npy",
    }
    data = load_dataset(tmp_path)
    np.testing.assert_array_equal(data["base"], FLOATS * 2)
    assert data["labels"].shape == (37,)


def test_load_dataset_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("IVFPQ_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no such dataset folder"):
        load_dataset("nothing-here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no base vectors found"):
        load_dataset("empty")
    monkeypatch.setenv("IVFPQ_DATA", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="data folder does not exist"):
        data_root()


def test_shared_sift10k_loads_when_present():
    try:
        data = load_dataset("sift10k")
    except FileNotFoundError:
        pytest.skip("shared data not available")
    assert data["base"].shape == (10000, 128)
    assert data["query"].shape == (100, 128)
    assert data["groundtruth"].shape == (100, 100)
