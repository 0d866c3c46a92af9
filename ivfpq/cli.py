"""The ``ivfpq`` command: the only module that parses arguments or prints."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def _demo(args) -> int:
    from .cluster import KMeans
    from .datasets import make_blobs

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name, (n, d, k) in {"blobs2d": (3000, 2, 6), "blobs64d": (20000, 64, 32)}.items():
        X, _ = make_blobs(n, d, centers=k, random_state=args.seed)
        start = time.perf_counter()
        model = KMeans(n_clusters=k, random_state=args.seed, verbose=not args.quiet).fit(X)
        seconds = time.perf_counter() - start
        np.save(out / f"{name}_centroids.npy", model.cluster_centers_)
        np.save(out / f"{name}_labels.npy", model.labels_)
        summary[name] = {
            "n": n, "d": d, "k": k, "algorithm": model.algorithm, "iterations": model.n_iter_,
            "inertia": model.inertia_, "seconds": round(seconds, 4),
            "history": [[round(s, 6), i] for s, i in model.history_],
        }
        if not args.quiet:
            print(f"{name}: n={n} d={d} k={k} iterations={model.n_iter_} "
                  f"inertia={model.inertia_:.6g} seconds={seconds:.3f}")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    if not args.quiet:
        print(f"wrote {out}/")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivfpq", description="k-means at scale, PQ and vector indexes")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="cluster built-in data and write the results to a folder")
    demo.add_argument("--out", default="demo-output", help="output folder (default: demo-output)")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    demo.add_argument("--quiet", action="store_true", help="print nothing")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, OSError) as exc:
        print(f"ivfpq {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
