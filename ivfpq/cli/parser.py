"""The argument parser of the ``ivfpq`` command: every subcommand, option and help text."""

from __future__ import annotations

import argparse

from .. import __version__
from ._common import UsageError
# Aliased: build_parser names its subparsers after the commands.
from .bench import BENCHMARKS
from .bench import bench as _bench
from .cluster import cluster as _cluster
from .cluster import DEMO_RACE
from .cluster import demo as _demo
from .index import INDEX_TYPES, index_build, index_eval, index_ground_truth, index_search

__all__ = ["build_parser"]


class _Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (with a pointer to --help), not usage + message."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


def _int_at_least(minimum, expected):
    """An argparse type: an integer >= ``minimum``; ``expected`` words the error."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonnegative_int = _int_at_least(0, "an integer >= 0")


def _int_list(text):
    """``"1,4,16"`` -> [1, 4, 16] (positive integers)."""
    return [_positive_int(part.strip()) for part in text.split(",")]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``ivfpq`` command (every subcommand has --help)."""
    common = _Parser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true",
                        help="print nothing but errors; no progress bars")

    parser = _Parser(
        prog="ivfpq",
        description="k-means at scale, product quantization and vector indexes. "
                    "Reads .fvecs, .ivecs, .bvecs, .npy, ann-benchmarks .hdf5 and MNIST IDX files.",
        epilog="Run 'ivfpq COMMAND --help' for a command's options. Start with: ivfpq demo --out demo-output",
    )
    parser.add_argument("--version", action="version", version=f"ivfpq {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    race, quick = DEMO_RACE["full"], DEMO_RACE["quick"]
    demo = sub.add_parser(
        "demo", parents=[common], help="k-means on built-in data: a race of exact Lloyd and mop",
        description="Two parts, on built-in seeded data. blobs2d: 3,000 points in 2-D, k=6, "
                    "written to OUT/blobs2d/ (centroids.npy, labels.npy, summary.json, "
                    f"clusters.png, inertia.png). race: {race.n:,} points in {race.d}-D "
                    f"clustered with k={race.k:,} by exact Lloyd and by mop from the same "
                    f"initial centroids, {race.iterations} iterations each; prints the time "
                    f"each takes to reach exact Lloyd's {race.iterations}-iteration inertia "
                    "+0.5% and the speedup, then builds an IVFFlat index whose lists are "
                    "mop's centroids and prints its recall@10; writes OUT/race/ "
                    "(centroids.npy, race.png: inertia over time, summary.json). "
                    "OUT/summary.json gathers both. About a minute on two cores, plus Numba "
                    "compiling the kernels the first time (in untimed warm-up runs).")
    demo.add_argument("--out", default="demo-output", metavar="DIR",
                      help="output folder (default: demo-output)")
    demo.add_argument("--seed", type=_nonnegative_int, default=0, help="random seed (default: 0)")
    demo.add_argument("--max-iter", type=_positive_int, default=300, metavar="N",
                      help="maximum k-means iterations of blobs2d (default: 300)")
    demo.add_argument("--quick", action="store_true",
                      help=f"a small race ({quick.n:,} points in {quick.d}-D, k={quick.k:,}): "
                           "seconds, for a test")
    demo.add_argument("--no-plots", action="store_true", help="skip the PNG pictures")
    demo.set_defaults(func=_demo)

    cluster = sub.add_parser(
        "cluster", parents=[common], help="k-means on a vector file",
        description="Cluster the vectors of INPUT with k-means and write OUT/centroids.npy, "
                    "OUT/labels.npy, OUT/summary.json (n, d, k, algorithm, iterations, inertia, "
                    "seconds, per-iteration history), OUT/clusters.png and OUT/inertia.png.")
    cluster.add_argument("input", metavar="INPUT",
                         help="vector file (.fvecs .ivecs .bvecs .npy .hdf5[:dataset] IDX) or a "
                              "dataset folder (its base vectors are used)")
    cluster.add_argument("--k", type=_positive_int, required=True, help="number of clusters")
    cluster.add_argument("--out", required=True, metavar="DIR", help="output folder")
    cluster.add_argument("--algorithm", choices=("auto", "lloyd", "mop"), default=None,
                         help="how points find their centroid: lloyd (exact), mop (graph-based, "
                              "for large k), auto (choose); default: the library's default")
    cluster.add_argument("--max-iter", type=_positive_int, default=300, metavar="N",
                         help="maximum iterations (default: 300)")
    cluster.add_argument("--seed", type=_nonnegative_int, default=0, help="random seed (default: 0)")
    cluster.add_argument("--init", choices=("auto", "k-means++", "random", "k-means||", "hierarchical"),
                         default="auto", help="initial centroids (default: auto, i.e. k-means++ below "
                                              "1,000 clusters, hierarchical from there on)")
    cluster.add_argument("--n-init", type=_positive_int, default=1, metavar="N",
                         help="runs from different starts; the lowest inertia wins (default: 1)")
    cluster.add_argument("--metric", choices=("sqeuclidean", "cosine"), default="sqeuclidean",
                         help="distance (default: sqeuclidean)")
    cluster.add_argument("--dataset", default=None, help="HDF5 dataset to read (default: train)")
    cluster.add_argument("--threads", type=_positive_int, default=None, help="threads (default: all cores)")
    cluster.add_argument("--no-plots", action="store_true", help="skip the PNG pictures")
    cluster.set_defaults(func=_cluster)

    index = sub.add_parser("index", help="build, search and evaluate vector indexes",
                           description="Build an index over a vector file, search it, and measure "
                                       "recall and queries per second against a ground truth.")
    index_sub = index.add_subparsers(dest="index_command", required=True, metavar="SUBCOMMAND")

    build = index_sub.add_parser(
        "build", parents=[common], help="build an index from a vector file and save it",
        description="Train (IVF) and fill an index with the vectors of INPUT, then save it to FILE.")
    build.add_argument("input", metavar="INPUT", help="base vectors (any supported format, or a dataset folder)")
    build.add_argument("--type", required=True, choices=tuple(INDEX_TYPES), help="index type")
    build.add_argument("--out", required=True, metavar="FILE", help="index file to write")
    build.add_argument("--nlist", type=_positive_int, help="IVF: number of inverted lists (coarse centroids)")
    build.add_argument("--M", type=_positive_int,
                       help="IVFPQ: number of subquantizers; HNSW: links per node")
    build.add_argument("--nbits", type=_positive_int, help="IVFPQ: bits per subquantizer code")
    build.add_argument("--ef-construction", type=_positive_int, help="HNSW: beam width while building")
    build.add_argument("--metric", choices=("l2", "ip", "cosine"), default=None, help="distance")
    build.add_argument("--train-size", type=_positive_int, metavar="N",
                       help="IVF: train on a random sample of N vectors (default: all)")
    build.add_argument("--seed", type=_nonnegative_int, default=0, help="random seed (default: 0)")
    build.set_defaults(func=index_build)

    search = index_sub.add_parser(
        "search", parents=[common], help="search an index for the k nearest neighbours of queries",
        description="Search the saved index FILE for the K nearest neighbours of each query; write "
                    "their ids (and optionally distances) in the format the extension names.")
    search.add_argument("index", metavar="FILE", help="index file written by 'ivfpq index build'")
    search.add_argument("queries", metavar="QUERIES", help="query vectors (hdf5: 'test' by default)")
    search.add_argument("--k", type=_positive_int, required=True, help="neighbours per query")
    search.add_argument("--out", required=True, metavar="FILE",
                        help="ids output (.ivecs, .npy or .hdf5)")
    search.add_argument("--distances", metavar="FILE", help="also write the distances here")
    search.add_argument("--nprobe", type=_positive_int, help="IVF: lists visited per query")
    search.add_argument("--ef-search", type=_positive_int, help="HNSW: beam width while searching")
    search.set_defaults(func=index_search)

    evaluate = index_sub.add_parser(
        "eval", parents=[common], help="recall and queries/s against a ground truth",
        description="Search FILE with each given --nprobe (or --ef-search) value and report "
                    "recall@K and queries per second; optionally write JSON and a recall-latency plot.")
    evaluate.add_argument("index", metavar="FILE", help="index file written by 'ivfpq index build'")
    evaluate.add_argument("queries", metavar="QUERIES", help="query vectors (hdf5: 'test' by default)")
    evaluate.add_argument("--ground-truth", metavar="FILE",
                          help="true neighbour ids per query (.ivecs, .npy, hdf5 'neighbors'); "
                               "default: QUERIES when it is an hdf5 file")
    evaluate.add_argument("--k", type=_positive_int, default=10, help="neighbours per query (default: 10)")
    evaluate.add_argument("--nprobe", type=_int_list, metavar="N[,N...]", help="IVF: values to try, e.g. 1,4,16")
    evaluate.add_argument("--ef-search", type=_int_list, metavar="N[,N...]", help="HNSW: values to try")
    evaluate.add_argument("--repeat", type=_positive_int, default=3,
                          help="timed runs per setting; the median is reported (default: 3)")
    evaluate.add_argument("--out", metavar="FILE", help="write the results as JSON")
    evaluate.add_argument("--plot", metavar="PNG", help="write a recall-against-latency plot")
    evaluate.set_defaults(func=index_eval)

    truth = index_sub.add_parser(
        "ground-truth", parents=[common], help="exact nearest neighbours (for 'index eval')",
        description="Compute the exact K nearest neighbours of each query among the base vectors.")
    truth.add_argument("base", metavar="BASE", help="base vectors")
    truth.add_argument("queries", metavar="QUERIES", help="query vectors")
    truth.add_argument("--k", type=_positive_int, default=100, help="neighbours per query (default: 100)")
    truth.add_argument("--out", required=True, metavar="FILE", help="ids output (.ivecs, .npy or .hdf5)")
    truth.set_defaults(func=index_ground_truth)

    bench = sub.add_parser(
        "bench", help="run a benchmark script from the source repository",
        description="Run benchmarks/<script>.py from the source checkout with the arguments that "
                    "follow (try: ivfpq bench kmeans --help). "
                    + "; ".join(f"{name}: {script}" for name, script in BENCHMARKS.items()) + ".")
    bench.add_argument("suite", choices=tuple(BENCHMARKS), help="which benchmark")
    bench.add_argument("script_args", nargs=argparse.REMAINDER, metavar="ARGS",
                       help="passed to the script unchanged (e.g. --quick)")
    bench.set_defaults(func=_bench)
    return parser
