"""The ``ivfpq`` command, run in-process on small files in a temporary folder."""

import importlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ivfpq
import ivfpq.cli.bench as bench_command
import ivfpq.cli.cluster as cluster_command
from ivfpq.cli import BENCHMARKS, DEMO_SETS, build_parser, main
from ivfpq.cli.cluster import DEMO_RACE
from ivfpq.cli._common import progress_enabled
from ivfpq.datasets import make_blobs
from ivfpq.io import read_vectors, write_vectors

REPO = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments, exit_code=None):
    assert code != 0
    if exit_code is not None:
        assert code == exit_code
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def blobs():
    X, _ = make_blobs(240, 2, centers=3, random_state=5)
    return X


@pytest.fixture
def files(tmp_path, blobs):
    paths = {}
    for ext in (".fvecs", ".npy", ".hdf5"):
        paths[ext] = tmp_path / f"points{ext}"
        write_vectors(paths[ext], blobs)
    return paths


# ----------------------------------------------------------------------------- demo


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo-output"
    assert main(["demo", "--out", str(out), "--quiet", "--quick"]) == 0
    return out


def test_demo_writes_the_2d_set(demo_dir):
    overview = json.loads((demo_dir / "summary.json").read_text())
    assert set(overview) == set(DEMO_SETS) | {"race"}
    for name, (n, d, _, k, _) in DEMO_SETS.items():
        folder = demo_dir / name
        names = {"centroids.npy", "labels.npy", "summary.json", "clusters.png", "inertia.png"}
        assert {p.name for p in folder.iterdir()} == names
        centroids, labels = np.load(folder / "centroids.npy"), np.load(folder / "labels.npy")
        assert centroids.shape == (k, d) and labels.shape == (n,)
        assert set(np.unique(labels)) <= set(range(k))
        summary = json.loads((folder / "summary.json").read_text())
        for key in ("n", "d", "k", "algorithm", "iterations", "inertia", "seconds", "history",
                    "warmup_seconds"):
            assert key in summary
        assert (summary["n"], summary["d"], summary["k"]) == (n, d, k)
        assert len(summary["history"]) == summary["iterations"]
        assert overview[name]["folder"] == name
        assert overview[name]["inertia"] == summary["inertia"]
        for png in ("clusters.png", "inertia.png"):
            assert (folder / png).read_bytes()[:8] == PNG_MAGIC


def test_demo_race_reports_both_runs_the_target_and_the_index(demo_dir):
    size = DEMO_RACE["quick"]
    folder = demo_dir / "race"
    assert {p.name for p in folder.iterdir()} == {"centroids.npy", "race.png", "summary.json"}
    assert (folder / "race.png").read_bytes()[:8] == PNG_MAGIC
    summary = json.loads((folder / "summary.json").read_text())
    assert json.loads((demo_dir / "summary.json").read_text())["race"]["folder"] == "race"
    assert (summary["n"], summary["d"], summary["k"]) == (size.n, size.d, size.k)
    assert np.load(folder / "centroids.npy").shape == (size.k, size.d)
    lloyd, mop = summary["runs"]["lloyd"], summary["runs"]["mop"]
    # the target is exact Lloyd's last inertia + 0.5%, which exact Lloyd reaches by definition
    assert summary["target_inertia"] == pytest.approx(lloyd["history"][-1]["inertia"] * 1.005)
    for run in (lloyd, mop):
        assert run["iterations"] == len(run["history"]) <= size.iterations
        first = next((h for h in run["history"] if h["inertia"] <= summary["target_inertia"]), None)
        assert run["seconds_to_target"] == (None if first is None else pytest.approx(first["seconds"], abs=1e-3))
    assert lloyd["seconds_to_target"] is not None
    if mop["seconds_to_target"] is None:
        assert summary["speedup"] is None
    else:
        assert summary["speedup"] == pytest.approx(
            lloyd["seconds_to_target"] / mop["seconds_to_target"], rel=1e-2)
    index = summary["index"]
    assert index["nlist"] == size.k and index["ntotal"] == size.n
    assert index["queries"] == size.queries
    assert [p["nprobe"] for p in index["search"]] == list(size.nprobe)
    recalls = [p["recall_at_10"] for p in index["search"]]
    assert recalls == sorted(recalls) and recalls[-1] >= 0.95


def test_demo_index_lists_are_the_given_centroids():
    centroids = np.random.default_rng(3).standard_normal((50, 8)).astype(np.float32)
    index = cluster_command._index_on(centroids)
    assert index.nlist == 50
    as_rows = lambda a: sorted(map(tuple, a.tolist()))
    assert as_rows(index.centroids_) == as_rows(centroids)


def test_demo_is_reproducible_and_prints_a_summary(tmp_path, capsys, demo_dir):
    code, out, err = run(capsys, "demo", "--out", tmp_path / "again", "--no-plots", "--quick")
    assert code == 0 and err == ""
    assert "blobs2d: n=3000 d=2 k=6" in out and "wrote" in out
    assert "exact Lloyd:" in out and "mop:" in out and "recall@10" in out
    for name in DEMO_SETS:
        np.testing.assert_array_equal(np.load(tmp_path / "again" / name / "labels.npy"),
                                      np.load(demo_dir / name / "labels.npy"))
        assert not (tmp_path / "again" / name / "clusters.png").exists()
    np.testing.assert_array_equal(np.load(tmp_path / "again" / "race" / "centroids.npy"),
                                  np.load(demo_dir / "race" / "centroids.npy"))
    assert not (tmp_path / "again" / "race" / "race.png").exists()


# ----------------------------------------------------------------------------- cluster


@pytest.mark.parametrize("ext", [".fvecs", ".npy", ".hdf5"])
def test_cluster_any_format(tmp_path, capsys, files, blobs, ext):
    out = tmp_path / f"out{ext}"
    code, stdout, err = run(capsys, "cluster", files[ext], "--k", 3, "--seed", 1, "--out", out)
    assert code == 0, err
    assert err == ""
    assert f"read {files[ext]}: 240 vectors of dimension 2" in stdout
    centroids, labels = np.load(out / "centroids.npy"), np.load(out / "labels.npy")
    assert centroids.shape == (3, 2) and labels.shape == (240,)
    # labels are the nearest centroid of each point
    distances = ((blobs[:, None, :] - centroids[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(labels, distances.argmin(axis=1))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n"] == 240 and summary["d"] == 2 and summary["k"] == 3
    assert summary["algorithm"] == "lloyd" and summary["seed"] == 1
    assert summary["inertia"] == pytest.approx(distances.min(axis=1).sum(), rel=1e-5)
    assert [h["iteration"] for h in summary["history"]] == list(range(1, summary["iterations"] + 1))
    assert summary["files"] == ["centroids.npy", "labels.npy", "clusters.png", "inertia.png", "summary.json"]
    assert (out / "clusters.png").read_bytes()[:8] == PNG_MAGIC


def test_cluster_quiet_prints_nothing_and_options_pass_through(tmp_path, capsys, files):
    code, stdout, err = run(capsys, "cluster", files[".npy"], "--k", 4, "--out", tmp_path / "o",
                            "--quiet", "--init", "random", "--n-init", 2, "--max-iter", 2,
                            "--metric", "cosine", "--algorithm", "lloyd", "--no-plots", "--threads", 1)
    assert (code, stdout, err) == (0, "", "")
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["init"] == "random" and summary["metric"] == "cosine"
    assert summary["iterations"] <= 2 and summary["max_iter"] == 2
    assert not (tmp_path / "o" / "clusters.png").exists()


def test_cluster_reads_a_dataset_folder_and_hdf5_dataset_names(tmp_path, capsys, blobs):
    folder = tmp_path / "mydata"
    write_vectors(folder / "base.fvecs", blobs)
    write_vectors(folder / "query.fvecs", blobs[:5])
    code, stdout, _ = run(capsys, "cluster", folder, "--k", 2, "--out", tmp_path / "o1", "--no-plots")
    assert code == 0 and "base.fvecs: 240 vectors" in stdout
    write_vectors(tmp_path / "x.hdf5:vectors", blobs[:50])
    code, stdout, _ = run(capsys, "cluster", f"{tmp_path / 'x.hdf5'}:vectors", "--k", 2,
                          "--out", tmp_path / "o2", "--no-plots")
    assert code == 0 and "50 vectors" in stdout
    code, stdout, _ = run(capsys, "cluster", tmp_path / "x.hdf5", "--dataset", "vectors", "--k", 2,
                          "--out", tmp_path / "o3", "--no-plots")
    assert code == 0


def test_cluster_algorithm_mop_or_auto(tmp_path, capsys, files):
    for algorithm in ("mop", "auto"):
        code, _, err = run(capsys, "cluster", files[".npy"], "--k", 3, "--out", tmp_path / algorithm,
                           "--algorithm", algorithm, "--no-plots")
        assert code == 0, err
        summary = json.loads((tmp_path / algorithm / "summary.json").read_text())
        assert summary["algorithm"] == algorithm


# ----------------------------------------------------------------------------- errors


def _truncated(tmp_path, blobs):
    path = tmp_path / "cut.fvecs"
    write_vectors(path, blobs)
    path.write_bytes(path.read_bytes()[:-3])
    return path


@pytest.mark.parametrize(
    "argv, fragments, exit_code",
    [
        (["cluster", "{missing}", "--k", "3", "--out", "{out}"], ["ivfpq cluster: error:", "missing.fvecs: no such file"], 1),
        (["cluster", "{truncated}", "--k", "3", "--out", "{out}"], ["cut.fvecs: truncated", "row 239 at byte offset 2868"], 1),
        (["cluster", "{unknown}", "--k", "3", "--out", "{out}"], ["points.csv: unknown vector file extension"], 1),
        (["cluster", "{npy}", "--k", "0", "--out", "{out}"], ["argument --k: expected a positive integer, got 0", "ivfpq cluster --help"], 2),
        (["cluster", "{npy}", "--k", "three", "--out", "{out}"], ["argument --k: expected a positive integer, got 'three'"], 2),
        (["cluster", "{npy}", "--out", "{out}"], ["the following arguments are required: --k"], 2),
        (["cluster", "{npy}", "--k", "500", "--out", "{out}"], ["--k 500 is larger than the number of vectors", "(240)"], 1),
        (["cluster", "{npy}", "--k", "3", "--out", "{out}", "--algorithm", "fast"], ["argument --algorithm: invalid choice: 'fast'"], 2),
        (["cluster", "{npy}", "--k", "3", "--out", "{npy}"], ["exists and is not a folder"], 1),
        (["cluster", "{nan}", "--k", "3", "--out", "{out}"], ["nan.npy: row 7 holds NaN or infinity"], 1),
        (["cluster", "{hdf5}:test", "--k", "3", "--out", "{out}"], ["has no dataset 'test'; its datasets: train"], 1),
        (["frobnicate"], ["ivfpq: error: argument COMMAND: invalid choice: 'frobnicate'"], 2),
        ([], ["the following arguments are required: COMMAND"], 2),
        (["index"], ["ivfpq index: error:", "SUBCOMMAND"], 2),
        (["index", "build", "{npy}", "--type", "annoy", "--out", "{out}"], ["argument --type: invalid choice: 'annoy'"], 2),
        (["index", "eval", "{npy}", "{npy}", "--nprobe", "1,x"], ["argument --nprobe: expected a positive integer, got 'x'"], 2),
        (["index", "search", "{missing}", "{npy}", "--k", "3", "--out", "{out}"], ["ivfpq index search: error:"], 1),
        (["bench", "svd"], ["argument suite: invalid choice: 'svd'"], 2),
        (["demo", "--seed", "-1"], ["argument --seed: expected an integer >= 0, got -1"], 2),
    ],
)
def test_errors_are_one_line_without_traceback(tmp_path, capsys, files, blobs, argv, fragments, exit_code):
    nan = blobs.copy()
    nan[7, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    (tmp_path / "points.csv").write_text("1,2\n")
    values = {
        "missing": tmp_path / "missing.fvecs", "truncated": _truncated(tmp_path, blobs),
        "unknown": tmp_path / "points.csv", "npy": files[".npy"], "hdf5": files[".hdf5"],
        "nan": tmp_path / "nan.npy", "out": tmp_path / "out",
    }
    argv = [a.format(**values) for a in argv]
    code, out, err = run(capsys, *argv)
    assert_one_line_error(code, err, *fragments, exit_code=exit_code)
    assert out == ""


def test_unexpected_exception_is_one_line(tmp_path, capsys, files, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(cluster_command, "fit_kmeans", broken)
    code, _, err = run(capsys, "cluster", files[".npy"], "--k", 3, "--out", tmp_path / "o")
    assert_one_line_error(code, err, "ivfpq cluster: internal error: RuntimeError: something broke",
                          "IVFPQ_DEBUG=1", exit_code=1)
    monkeypatch.setenv("IVFPQ_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["cluster", str(files[".npy"]), "--k", "3", "--out", str(tmp_path / "o")])


def test_keyboard_interrupt_is_one_line(tmp_path, capsys, files, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cluster_command, "fit_kmeans", interrupted)
    code, _, err = run(capsys, "cluster", files[".npy"], "--k", 3, "--out", tmp_path / "o")
    assert_one_line_error(code, err, "ivfpq cluster: interrupted", exit_code=130)


# ----------------------------------------------------------------------------- help


def _subcommands():
    commands = [[]]
    parser = build_parser()
    for action in parser._subparsers._group_actions:
        for name, sub in action.choices.items():
            commands.append([name])
            if sub._subparsers is not None:
                for sub_action in sub._subparsers._group_actions:
                    commands.extend([name, inner] for inner in sub_action.choices)
    return commands


@pytest.mark.parametrize("command", _subcommands(), ids=lambda c: " ".join(c) or "ivfpq")
def test_every_subcommand_has_help(capsys, command):
    code, out, err = run(capsys, *command, "--help")
    assert code == 0 and err == ""
    assert out.startswith(f"usage: {' '.join(['ivfpq', *command])}")


def test_help_lists_all_commands_and_version(capsys):
    assert {" ".join(c) for c in _subcommands()} >= {
        "", "demo", "cluster", "index", "index build", "index search", "index eval", "bench"}
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"ivfpq {ivfpq.__version__}"


def test_module_help_in_a_subprocess():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-m", "ivfpq.cli", "--help"], capture_output=True,
                            text=True, env=env, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ivfpq")
    for command in ("demo", "cluster", "index", "bench"):
        assert command in result.stdout


# ----------------------------------------------------------------------------- progress


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_only_on_a_terminal_and_not_quiet(monkeypatch):
    parser = build_parser()
    loud = parser.parse_args(["cluster", "x.npy", "--k", "2", "--out", "o"])
    quiet = parser.parse_args(["cluster", "x.npy", "--k", "2", "--out", "o", "--quiet"])
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not progress_enabled(loud)
    monkeypatch.setattr(sys, "stderr", _Terminal())
    assert progress_enabled(loud)
    assert not progress_enabled(quiet)


def test_progress_bar_shows_inertia_and_changes_on_a_terminal(tmp_path, files, monkeypatch, capsys):
    import tqdm.auto

    class EagerBar(tqdm.auto.tqdm):  # redraw on every update: the fit takes milliseconds
        def __init__(self, *args, **kwargs):
            kwargs.update(mininterval=0, miniters=1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(importlib.import_module("ivfpq.cluster.kmeans"), "tqdm", EagerBar)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["cluster", str(files[".npy"]), "--k", "3", "--out", str(tmp_path / "o"),
                 "--no-plots", "--init", "random"]) == 0
    shown = terminal.getvalue()
    assert "k-means" in shown and "inertia=" in shown and "moved=" in shown
    quiet_terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet_terminal)
    assert main(["cluster", str(files[".npy"]), "--k", "3", "--out", str(tmp_path / "q"),
                 "--no-plots", "--quiet"]) == 0
    assert quiet_terminal.getvalue() == ""


def test_library_is_silent_by_default(capsys, blobs):
    ivfpq.KMeans(n_clusters=3, random_state=0).fit(blobs)
    out, err = capsys.readouterr()
    assert (out, err) == ("", "")


# ----------------------------------------------------------------------------- bench


def test_bench_runs_the_script_with_forwarded_arguments(tmp_path, monkeypatch, capfd):
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / BENCHMARKS["kmeans"]).write_text(
        "import sys\nprint('ARGS', sys.argv[1:])\nsys.exit(3)\n")
    monkeypatch.setenv("IVFPQ_BENCHMARKS", str(folder))
    assert main(["bench", "kmeans", "--quick", "--n", "5"]) == 3
    assert "ARGS ['--quick', '--n', '5']" in capfd.readouterr().out


def test_bench_missing_script_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("IVFPQ_BENCHMARKS", raising=False)
    monkeypatch.setattr(bench_command, "benchmark_folders", lambda: [tmp_path / "nowhere"])
    code, _, err = run(capsys, "bench", "ann", "--quick")
    assert_one_line_error(code, err, "ivfpq bench: error: benchmark script ann.py not found",
                          "ship with the source repository", exit_code=1)


# ----------------------------------------------------------------------------- index


@pytest.fixture
def ann_files(tmp_path):
    rng = np.random.default_rng(0)
    base = make_blobs(600, 8, centers=12, random_state=0)[0]
    queries = base[rng.choice(600, 20, replace=False)] + 0.01 * rng.standard_normal((20, 8)).astype(np.float32)
    distances = ((queries[:, None, :] - base[None]) ** 2).sum(-1)
    truth = np.argsort(distances, axis=1, kind="stable")[:, :10].astype(np.int32)
    paths = {"base": tmp_path / "base.fvecs", "query": tmp_path / "query.fvecs",
             "truth": tmp_path / "truth.ivecs"}
    write_vectors(paths["base"], base)
    write_vectors(paths["query"], queries)
    write_vectors(paths["truth"], truth)
    return paths


@pytest.mark.parametrize("kind, options, search", [
    ("ivfflat", ["--nlist", "8"], ["--nprobe", "8"]),
    ("ivfpq", ["--nlist", "4", "--M", "4", "--nbits", "4"], ["--nprobe", "4"]),
    ("hnsw", ["--M", "8", "--ef-construction", "40"], ["--ef-search", "64"]),
])
def test_index_build_search_eval(tmp_path, capsys, ann_files, kind, options, search):
    index_path = tmp_path / f"{kind}.npz"
    code, out, err = run(capsys, "index", "build", ann_files["base"], "--type", kind, *options,
                         "--out", index_path)
    assert code == 0, err
    assert index_path.exists()
    code, out, err = run(capsys, "index", "search", index_path, ann_files["query"], "--k", 10,
                         *search, "--out", tmp_path / "ids.ivecs", "--distances", tmp_path / "d.npy")
    assert code == 0, err
    ids = read_vectors(tmp_path / "ids.ivecs")
    assert ids.shape == (20, 10)
    truth = read_vectors(ann_files["truth"])
    if kind != "ivfpq":  # exhaustive settings: every query finds its own nearest neighbour
        assert (ids[:, 0] == truth[:, 0]).mean() >= 0.9
    values = search[1] if kind == "hnsw" else "1,2,4"
    code, out, err = run(capsys, "index", "eval", index_path, ann_files["query"], "--ground-truth",
                         ann_files["truth"], "--k", 10, search[0], values, "--repeat", 1,
                         "--out", tmp_path / "eval.json", "--plot", tmp_path / "recall.png")
    assert code == 0, err
    results = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert all(0.0 <= r["recall"] <= 1.0 and r["qps"] > 0 for r in results)
    assert (tmp_path / "recall.png").read_bytes()[:8] == PNG_MAGIC
    assert "| recall@10 | queries/s | ms/query |" in out


# The command's index plumbing (options, I/O, timing, errors) with the real indexes.


def test_index_plumbing_ivf(tmp_path, capsys, ann_files):
    index_path = tmp_path / "ivf.npz"
    code, out, err = run(capsys, "index", "build", ann_files["base"], "--type", "ivfflat",
                         "--nlist", 8, "--train-size", 100, "--out", index_path)
    assert code == 0, err
    assert "built IVFFlat over 600 vectors" in out and index_path.exists()
    assert ivfpq.load(index_path).ntotal == 600
    code, out, err = run(capsys, "index", "search", index_path, ann_files["query"], "--k", 10,
                         "--nprobe", 8, "--out", tmp_path / "ids.npy", "--distances", tmp_path / "d.fvecs")
    assert code == 0, err
    truth = read_vectors(ann_files["truth"])
    assert ivfpq.recall(np.load(tmp_path / "ids.npy"), truth, 10) == 1.0  # every list: exact
    distances = read_vectors(tmp_path / "d.fvecs")
    assert distances.shape == (20, 10) and (np.diff(distances, axis=1) >= 0).all()
    code, out, err = run(capsys, "index", "eval", index_path, ann_files["query"], "--ground-truth",
                         ann_files["truth"], "--k", 10, "--nprobe", "1,8", "--repeat", 2,
                         "--out", tmp_path / "eval.json", "--plot", tmp_path / "recall.png")
    assert code == 0, err
    results = json.loads((tmp_path / "eval.json").read_text())["results"]
    assert [r["nprobe"] for r in results] == [1, 8]
    assert results[0]["recall"] <= results[1]["recall"] == 1.0
    assert "| nprobe | recall@10 | queries/s | ms/query |" in out and "| 8 | 1.0000 |" in out
    assert (tmp_path / "recall.png").read_bytes()[:8] == PNG_MAGIC


def test_index_plumbing_hnsw_and_hdf5(tmp_path, capsys, ann_files):
    base, queries, truth = (read_vectors(ann_files[r]) for r in ("base", "query", "truth"))
    from ivfpq.io import write_ann_hdf5

    ann = tmp_path / "toy.hdf5"
    write_ann_hdf5(ann, train=base, test=queries, neighbors=truth)
    index_path = tmp_path / "hnsw.npz"
    code, _, err = run(capsys, "index", "build", ann, "--type", "hnsw", "--M", 8,
                       "--ef-construction", 40, "--out", index_path)
    assert code == 0, err
    index = ivfpq.load(index_path)
    assert isinstance(index, ivfpq.HNSW) and (index.M, index.ef_construction) == (8, 40)
    code, out, err = run(capsys, "index", "eval", index_path, ann, "--k", 5, "--ef-search", "8,64",
                         "--repeat", 1)
    assert code == 0, err
    assert "| ef_search | recall@5 |" in out and "| 64 | 1.0000 |" in out
    code, _, err = run(capsys, "index", "ground-truth", ann, f"{ann}:test", "--k", 7,
                       "--out", tmp_path / "gt.ivecs")
    assert code == 0, err
    np.testing.assert_array_equal(read_vectors(tmp_path / "gt.ivecs"), truth[:, :7])


@pytest.mark.parametrize("argv, fragments, exit_code", [
    (["index", "build", "{base}", "--type", "ivfflat", "--nbits", "8", "--out", "{out}"],
     ["ivfpq index build: error: --nbits does not apply to --type ivfflat"], 2),
    (["index", "build", "{base}", "--type", "hnsw", "--nlist", "8", "--out", "{out}"],
     ["ivfpq index build: error: --nlist does not apply to --type hnsw"], 2),
    (["index", "build", "{base}", "--type", "ivfflat", "--out", "{out}"],
     ["ivfpq index build: error: --type ivfflat needs --nlist"], 2),
    (["index", "build", "{base}", "--type", "ivfpq", "--nlist", "4", "--out", "{out}"],
     ["ivfpq index build: error: --type ivfpq needs --M"], 2),
    (["index", "build", "{base}", "--type", "hnsw", "--metric", "cosine", "--out", "{out}"],
     ["ivfpq index build: error: metric must be one of 'l2', 'ip'"], 1),
    (["index", "search", "{index}", "{query}", "--k", "3", "--ef-search", "8", "--out", "{out}"],
     ["--ef-search does not apply to a IVFFlat index"], 2),
    (["index", "eval", "{index}", "{query}", "--ground-truth", "{base}", "--k", "3"],
     ["ground-truth ids must be integers"], 1),
    (["index", "eval", "{index}", "{query}", "--ground-truth", "{short}", "--k", "3"],
     ["2 rows of ground truth for 20 queries"], 1),
    (["index", "eval", "{index}", "{query}", "--ground-truth", "{truth}", "--k", "11"],
     ["holds 10 neighbours per query, fewer than --k 11"], 1),
    (["index", "eval", "{index}", "{query}", "--ground-truth", "{truth}", "--nprobe", "1", "--ef-search", "2"],
     ["give --nprobe or --ef-search, not both"], 2),
    (["index", "eval", "{index}", "{query}", "--k", "3"],
     ["--ground-truth FILE is required unless QUERIES is an ann-benchmarks .hdf5 file"], 2),
    (["index", "eval", "{index}", "{folder}", "--k", "3"],
     ["ivfpq index eval: error:", "the folder has no groundtruth file (found: base, query)"], 1),
    (["index", "search", "{missing}", "{query}", "--k", "3", "--out", "{out}"],
     ["ivfpq index search: error:", "missing.npz: no such index file"], 1),
])
def test_index_errors(tmp_path, capsys, ann_files, argv, fragments, exit_code):
    index_path = tmp_path / "ivf.npz"
    assert main(["index", "build", str(ann_files["base"]), "--type", "ivfflat", "--nlist", "4",
                 "--out", str(index_path), "--quiet"]) == 0
    write_vectors(tmp_path / "short.ivecs", np.zeros((2, 10), np.int32))
    folder = tmp_path / "folder"
    write_vectors(folder / "base.fvecs", read_vectors(ann_files["base"]))
    write_vectors(folder / "query.fvecs", read_vectors(ann_files["query"]))
    values = {"base": ann_files["base"], "query": ann_files["query"], "truth": ann_files["truth"],
              "index": index_path, "short": tmp_path / "short.ivecs", "missing": tmp_path / "missing.npz",
              "out": tmp_path / "out.npy", "folder": folder}
    code, out, err = run(capsys, *[a.format(**values) for a in argv])
    assert_one_line_error(code, err, *fragments, exit_code=exit_code)


def test_entry_point_names_main():
    text = (REPO / "pyproject.toml").read_text()
    assert 'ivfpq = "ivfpq.cli:main"' in text
    module, _, attribute = "ivfpq.cli:main".partition(":")
    assert getattr(__import__(module, fromlist=[attribute]), attribute) is main


def test_closed_stdout_pipe_stops_printing_not_work(tmp_path, files):
    # As in `ivfpq cluster ... | head -1`: the reader is gone before the results are printed.
    env = dict(os.environ, PYTHONPATH=str(REPO))
    process = subprocess.Popen(
        [sys.executable, "-m", "ivfpq.cli", "cluster", str(files[".npy"]), "--k", "3",
         "--out", str(tmp_path / "o"), "--no-plots"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert b"Traceback" not in err and b"Broken pipe" not in err
    assert (tmp_path / "o" / "summary.json").exists()
