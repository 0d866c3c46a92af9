"""Mini-batch k-means: ivfpq MiniBatchKMeans against scikit-learn's, time to an inertia.

Both run in this process on the same float32 data from the same initial centroids
(distinct rows drawn by a seeded generator), with ``max_no_improvement=None`` so that
they run their full number of epochs. During each run the centroids are copied after
the first step and every ``--every`` steps with a time stamp (scikit-learn's through a
wrapper around its ``_mini_batch_step``; ours through a subclass); after the run, the
exact inertia of each copy on the full data is computed (untimed). The target is the inertia
scikit-learn reaches at the end of its run; a contender's "time to target" is the
first time stamp whose inertia is at or below it.

Data: sift-debian (743,933 x 128 uint8, rows in a seeded permutation) and the MiniLM
sentence embeddings (61,174 x 384 float16, cast to float32).

    python benchmarks/minibatch.py                 # both datasets, k = 1,000 and 10,000
    python benchmarks/minibatch.py --quick         # 100,000 sift rows, k = 1,000 only
    python benchmarks/minibatch.py --defaults --configs auto:1024   # each from its default start

With ``--defaults`` each library starts as a user's ``fit`` does (scikit-learn: greedy
k-means++ on ``init_size`` rows; ivfpq: ``init="auto"``), its start inside the timed run,
and the target is scikit-learn's final inertia from its own start.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import machine_line, print_table  # noqa: E402

from ivfpq import MiniBatchKMeans  # noqa: E402
from ivfpq.cluster.executor import local_executor  # noqa: E402
from ivfpq.cluster.lloyd import predict  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if not DATA.exists():
    DATA = Path("/work/shared/data")


def load(name, n=None, seed=0):
    if name == "sift":
        raw = np.load(DATA / "sift-debian" / "base.u8.npy", mmap_mode="r")
    else:
        raw = np.load(DATA / "minilm-debian-descriptions" / "embeddings.npy", mmap_mode="r")
    rows = np.random.default_rng(seed).permutation(raw.shape[0])[: n or raw.shape[0]]
    return np.ascontiguousarray(raw[rows], dtype=np.float32)


class _Recorder:
    """Time-stamped copies of the centroids, every ``every`` steps."""

    def __init__(self, every):
        self.every, self.steps, self.copies, self.start, self.paused = every, 0, [], None, 0.0

    def __call__(self, centers):
        self.steps += 1
        if self.steps % self.every == 0 or self.steps == 1:
            now = time.perf_counter()
            self.copies.append((now - self.start - self.paused, centers.copy()))
            self.paused += time.perf_counter() - now


def run_sklearn(X, k, init, epochs, batch_size, every):
    from sklearn.cluster import MiniBatchKMeans as SklearnMiniBatchKMeans
    from sklearn.cluster import _kmeans

    recorder = _Recorder(every)
    original = _kmeans._mini_batch_step

    def step(*args, **kwargs):
        inertia = original(*args, **kwargs)
        recorder(kwargs["centers_new"])
        return inertia

    start = {} if init is None else {"init": init, "n_init": 1}
    model = SklearnMiniBatchKMeans(k, max_iter=epochs, batch_size=batch_size, max_no_improvement=None,
                                   compute_labels=False, random_state=0, **start)
    _kmeans._mini_batch_step = step
    try:
        recorder.start = time.perf_counter()
        model.fit(X)
        total = time.perf_counter() - recorder.start - recorder.paused
    finally:
        _kmeans._mini_batch_step = original
    recorder.copies.append((total, model.cluster_centers_.copy()))
    return recorder.copies, total


def run_ours(X, k, init, epochs, every, **params):
    recorder = _Recorder(every)

    class Recorded(MiniBatchKMeans):
        def _step(self, x, weights, rng, reassign):
            inertia = super()._step(x, weights, rng, reassign)
            recorder(self.cluster_centers_)
            return inertia

    start = {} if init is None else {"init": init}
    model = Recorded(k, max_iter=epochs, max_no_improvement=None, compute_labels=False, random_state=0,
                     **start, **params)
    recorder.start = time.perf_counter()
    model.fit(X)
    total = time.perf_counter() - recorder.start - recorder.paused
    recorder.copies.append((total, model.cluster_centers_.copy()))
    return recorder.copies, total, model.algorithm_


def inertia(X, centers):
    return predict(local_executor(X, None, None, False), centers)[1]


def curve(X, copies, sample):
    """(seconds, inertia on the sample scaled to all rows) per copy."""
    scale = X.shape[0] / sample.shape[0]
    return [(t, inertia(sample, c) * scale) for t, c in copies]


def time_to(points, target):
    for t, inertia in points:
        if inertia <= target:
            return t
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["sift", "minilm"], choices=["sift", "minilm"])
    p.add_argument("--k", type=int, nargs="+", default=[1000, 10000])
    p.add_argument("--n", type=int, default=None, help="rows (default: all)")
    p.add_argument("--epochs", type=int, default=1, help="scikit-learn's max_iter (passes over the data)")
    p.add_argument("--quick", action="store_true", help="100,000 sift rows, k = 1,000")
    p.add_argument("--plot", default=None, help="PNG of inertia against seconds")
    p.add_argument("--every", type=int, default=None, help="steps between two copies (default: ~20 per run)")
    p.add_argument("--eval-rows", type=int, default=100_000,
                   help="rows (a seeded sample) on which the copies' inertia is measured")
    p.add_argument("--slack", type=float, default=0.005,
                   help="target: scikit-learn's final inertia times (1 + slack)")
    p.add_argument("--defaults", action="store_true",
                   help="each library from its own default start (scikit-learn: greedy k-means++ on "
                        "init_size rows; ivfpq: init='auto'), its time counted, instead of common "
                        "initial centroids")
    p.add_argument("--configs", nargs="+", default=["lloyd:1024", "lloyd:4096", "mop:2048"],
                   help="our settings, algorithm:batch_size[:param=value,...], e.g. mop:4096:cold_nprobe=4")
    args = p.parse_args()
    if args.quick:
        args.datasets, args.k, args.n = ["sift"], [1000], 100_000
    print(f"machine: {machine_line()}")
    print(f"load at start: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    rows, panels = [], {}
    for name in args.datasets:
        X = load(name, args.n)
        for k in args.k:
            init = None if args.defaults else X[np.sort(np.random.default_rng(1).choice(X.shape[0], k,
                                                                                        replace=False))]
            steps = args.epochs * X.shape[0] // 1024
            every = args.every or max(1, steps // 20)
            m = min(args.eval_rows, X.shape[0])
            sample = X[np.sort(np.random.default_rng(2).choice(X.shape[0], m, replace=False))]
            copies, total = run_sklearn(X, k, init, args.epochs, 1024, every)
            sk = curve(X, copies, sample)
            finals = {"scikit-learn (batch 1024)": inertia(X, copies[-1][1])}
            target = sk[-1][1] * (1 + args.slack)
            results = {"scikit-learn (batch 1024)": (sk, total, "lloyd")}
            for config in args.configs:
                algorithm, batch, *extra = config.split(":")
                batch = int(batch)
                params = dict(item.split("=") for item in extra[0].split(",")) if extra else {}
                params = {key: int(value) if value.isdigit() else value for key, value in params.items()}
                our_every = max(1, every * 1024 // batch)
                copies, total, used = run_ours(X, k, init, args.epochs, our_every, algorithm=algorithm,
                                               batch_size=batch, **params)
                label = f"ivfpq {algorithm} (batch {batch}{''.join(f', {k}={v}' for k, v in params.items())})"
                results[label] = (curve(X, copies, sample), total, used)
                finals[label] = inertia(X, copies[-1][1])
            reference = time_to(sk, target)
            for label, (points, total, used) in results.items():
                reached = time_to(points, target)
                rows.append({
                    "data": name, "n": X.shape[0], "d": X.shape[1], "k": k, "contender": label,
                    "epochs": args.epochs, "run s": total, "final inertia (all rows)": finals[label],
                    "s to target": reached,
                    "sklearn / this": None if reached is None else reference / reached,
                })
            panels[(name, k)] = {label: points for label, (points, _, _) in results.items()}
            print_table(rows[-len(results):], list(rows[0]), title=f"{name}, k={k}, target {target:.4e}")
            sys.stdout.flush()
    print_table(rows, list(rows[0]), title="all runs")
    print(f"load at end: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    if args.plot:
        from ivfpq.plot import new_figure, plot_score_over_time, save_figure

        fig = new_figure(6.0 * len(panels), 4.5)
        for i, ((name, k), histories) in enumerate(panels.items()):
            ax = fig.add_subplot(1, len(panels), i + 1)
            plot_score_over_time(histories, title=f"{name}, k={k}", logy=True, ax=ax)
        save_figure(fig, args.plot)


if __name__ == "__main__":
    main()
