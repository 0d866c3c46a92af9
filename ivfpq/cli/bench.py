"""``ivfpq bench NAME [ARGS...]``: run a benchmark script of the source repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ._common import EXIT_INTERRUPTED, CommandError

__all__ = ["BENCHMARKS", "bench"]

#: ``ivfpq bench NAME`` runs ``benchmarks/<script>``.
BENCHMARKS = {
    "kmeans": "kmeans_exact.py",
    "kmeans-large-k": "kmeans_large_k.py",
    "pq": "pq_tile_vs_kmeans.py",
    "ann": "ann.py",
}


def benchmark_folders():
    """Where the scripts may be: $IVFPQ_BENCHMARKS, the source checkout, ./benchmarks."""
    folders = []
    if os.environ.get("IVFPQ_BENCHMARKS"):
        folders.append(Path(os.environ["IVFPQ_BENCHMARKS"]))
    folders.append(Path(__file__).resolve().parents[2] / "benchmarks")  # a source checkout
    folders.append(Path.cwd() / "benchmarks")
    unique = []
    for folder in folders:
        if folder not in unique:
            unique.append(folder)
    return unique


def bench(args) -> int:
    """Run the script with the arguments that follow; its exit status is the command's."""
    script_name = BENCHMARKS[args.suite]
    folders = benchmark_folders()
    script = next((f / script_name for f in folders if (f / script_name).is_file()), None)
    if script is None:
        raise CommandError(
            f"benchmark script {script_name} not found (looked in {', '.join(str(f) for f in folders)}); "
            "the benchmarks ship with the source repository, not the installed package: run from "
            "a clone, or set IVFPQ_BENCHMARKS to its benchmarks folder"
        )
    env = dict(os.environ)
    repo = script.resolve().parent.parent
    if (repo / "ivfpq" / "__init__.py").is_file():  # run the scripts against this checkout
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), env.get("PYTHONPATH")]))
    command = [sys.executable, str(script), *args.script_args]
    try:
        return subprocess.run(command, env=env, cwd=repo).returncode
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
