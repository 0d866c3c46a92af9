import os
import zipfile

import numpy as np
import pytest

import ivfpq
from ivfpq import FileFormatError, IVFFlat, KMeans


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).standard_normal((600, 8), dtype=np.float32)


@pytest.fixture(scope="module")
def ivf(data):
    index = IVFFlat(nlist=8, random_state=0)
    index.train(data)
    index.add(data[:500])
    index.remove([3, 4, 5])
    return index


def _rewrite(path, out, **changes):
    """Copy an ivfpq file with some entries replaced (None drops an entry)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {name: f[name] for name in f.files}
    for name, value in changes.items():
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    with open(out, "wb") as f:
        np.savez(f, **arrays)
    return out


def test_kmeans_round_trip(tmp_path, data):
    model = KMeans(n_clusters=5, random_state=3, max_iter=7).fit(data)
    path = model.save(tmp_path / "kmeans.npz")
    loaded = ivfpq.load(path)
    assert isinstance(loaded, KMeans) and loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.cluster_centers_, model.cluster_centers_)
    np.testing.assert_array_equal(loaded.labels_, model.labels_)
    assert loaded.inertia_ == model.inertia_ and loaded.n_iter_ == model.n_iter_
    assert loaded.history_ == model.history_
    np.testing.assert_array_equal(loaded.predict(data), model.predict(data))
    assert KMeans.load(path).n_features_in_ == 8


def test_kmeans_with_array_init_and_unfitted(tmp_path):
    init = np.eye(3, dtype=np.float32)
    model = KMeans(n_clusters=3, init=init)
    loaded = ivfpq.load(model.save(tmp_path / "k.npz"))
    np.testing.assert_array_equal(loaded.init, init)
    assert not hasattr(loaded, "cluster_centers_")


def test_ivf_flat_round_trip(tmp_path, ivf, data):
    path = ivf.save(str(tmp_path / "ivf.npz"))
    loaded = ivfpq.load(path)
    assert isinstance(loaded, IVFFlat) and loaded.ntotal == ivf.ntotal == 497
    for nprobe in (1, 8):
        d1, i1 = ivf.search(data[:50], 5, nprobe=nprobe)
        d2, i2 = loaded.search(data[:50], 5, nprobe=nprobe)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(d1, d2)
    loaded.add(data[500:510])  # new ids continue after the largest one
    assert loaded.search(data[500:501], 1, nprobe=8)[1][0, 0] == 500


def test_untrained_index_round_trip(tmp_path):
    loaded = ivfpq.load(IVFFlat(nlist=4, metric="ip", nprobe=2).save(tmp_path / "u.npz"))
    assert not loaded.is_trained and loaded.metric == "ip" and loaded.nprobe == 2


def test_save_is_atomic_and_overwrites(tmp_path, ivf):
    path = tmp_path / "ivf.npz"
    path.write_bytes(b"old content")
    ivf.save(path)
    assert ivfpq.load(path).ntotal == ivf.ntotal
    assert os.listdir(tmp_path) == ["ivf.npz"]  # no temporary file left behind


def test_failed_save_leaves_previous_file(tmp_path, ivf, monkeypatch):
    path = tmp_path / "ivf.npz"
    ivf.save(path)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        ivf.save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ivf.npz"]


def test_unknown_version_is_refused(tmp_path, ivf):
    good = ivf.save(tmp_path / "good.npz")
    bad = _rewrite(good, tmp_path / "v99.npz", ivfpq_version=np.array(99, dtype=np.int64))
    with pytest.raises(FileFormatError, match="format version 99.*reads versions 1 to 1"):
        ivfpq.load(bad)
    bad = _rewrite(good, tmp_path / "v0.npz", ivfpq_version=np.array(0, dtype=np.int64))
    with pytest.raises(FileFormatError, match="version 0"):
        IVFFlat.load(bad)


def test_truncated_file_is_refused(tmp_path, ivf):
    good = ivf.save(tmp_path / "good.npz")
    raw = open(good, "rb").read()
    for cut in (len(raw) // 2, len(raw) - 10, 100):
        bad = tmp_path / f"cut{cut}.npz"
        bad.write_bytes(raw[:cut])
        with pytest.raises(FileFormatError, match="truncated or corrupted"):
            ivfpq.load(bad)


def test_corrupted_file_is_refused(tmp_path, ivf):
    good = ivf.save(tmp_path / "good.npz")
    raw = bytearray(open(good, "rb").read())
    with zipfile.ZipFile(good) as z:
        info = z.getinfo("vectors.npy")
    middle = info.header_offset + 200 + info.file_size // 2  # inside the vectors' bytes
    raw[middle] ^= 0xFF
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match="truncated or corrupted.*CRC"):
        ivfpq.load(bad)


def test_file_of_another_kind_is_refused(tmp_path, ivf):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(FileFormatError, match="not an ivfpq file \\(not an .npz archive"):
        ivfpq.load(text)
    npy = tmp_path / "array.npy"
    np.save(npy, np.zeros(3))
    with pytest.raises(FileFormatError, match="not an ivfpq file"):
        ivfpq.load(npy)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(3))
    with pytest.raises(FileFormatError, match="an .npz archive but not an ivfpq file"):
        ivfpq.load(plain)


def test_wrong_class_and_unknown_format_are_refused(tmp_path, ivf):
    good = ivf.save(tmp_path / "ivf.npz")
    with pytest.raises(FileFormatError, match="holds a 'ivf_flat' object, not a 'kmeans'"):
        KMeans.load(good)
    bad = _rewrite(good, tmp_path / "other.npz", ivfpq_format=np.array("rtree"))
    with pytest.raises(FileFormatError, match="format 'rtree', which this ivfpq does not know"):
        ivfpq.load(bad)


def test_pickled_or_inconsistent_content_is_refused(tmp_path, ivf):
    good = ivf.save(tmp_path / "ivf.npz")
    pickled = _rewrite(good, tmp_path / "obj.npz", list_ids=np.array([object()], dtype=object))
    with pytest.raises(FileFormatError, match="truncated or corrupted"):
        ivfpq.load(pickled)
    missing = _rewrite(good, tmp_path / "missing.npz", vectors=None)
    with pytest.raises(FileFormatError, match="lacks the array 'vectors'"):
        ivfpq.load(missing)
    wrong = _rewrite(good, tmp_path / "shape.npz", list_ids=np.zeros(3, dtype=np.int64))
    with pytest.raises(FileFormatError, match="array 'list_ids' has shape"):
        ivfpq.load(wrong)
    meta = _rewrite(good, tmp_path / "meta.npz", ivfpq_meta=np.array("{not json"))
    with pytest.raises(FileFormatError, match="not valid JSON"):
        ivfpq.load(meta)


def test_path_errors(tmp_path, ivf):
    with pytest.raises(FileNotFoundError, match="no such file"):
        ivfpq.load(tmp_path / "absent.npz")
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        ivfpq.load(123)
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        ivf.save(None)
    with pytest.raises(IsADirectoryError):
        ivfpq.load(tmp_path)


def test_ivfpq_round_trip(tmp_path, data):
    index = ivfpq.IVFPQ(nlist=4, M=4, nbits=5, keep_raw=True, random_state=0)
    index.train(data)
    index.add(data)
    loaded = ivfpq.load(index.save(tmp_path / "ivfpq.npz"))
    assert isinstance(loaded, ivfpq.IVFPQ) and isinstance(loaded.pq_, ivfpq.ProductQuantizer)
    for refine in (None, 4):
        d1, i1 = index.search(data[:20], 5, nprobe=2, refine=refine)
        d2, i2 = loaded.search(data[:20], 5, nprobe=2, refine=refine)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_array_equal(d1, d2)


@pytest.mark.parametrize("make", [
    lambda: ivfpq.ProductQuantizer(M=4, nbits=4, random_state=0),
    lambda: ivfpq.ProductQuantizer(M=8, codebook="tile", distribution="auto", random_state=0),
    lambda: ivfpq.TileEncoder("empirical", nbits=6, random_state=0),
])
def test_quantizer_round_trips(tmp_path, data, make):
    model = make().fit(data)
    loaded = ivfpq.load(model.save(tmp_path / "q.npz"))
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    codes = model.encode(data)
    np.testing.assert_array_equal(loaded.encode(data), codes)
    np.testing.assert_array_equal(loaded.decode(codes), model.decode(codes))
    np.testing.assert_array_equal(loaded.codebooks_, model.codebooks_)
    unfitted = ivfpq.load(make().save(tmp_path / "u.npz"))
    assert not hasattr(unfitted, "codebooks_")
