"""The ``ivfpq`` command: the only part of the package that parses arguments or prints.

Subcommands::

    ivfpq demo [--out DIR] [--quick]                    race exact Lloyd and mop on built-in data; pictures
    ivfpq cluster INPUT --k K --out DIR                 k-means on a vector file
    ivfpq index build INPUT --type ivfflat|ivfpq|hnsw --out FILE
    ivfpq index search INDEX QUERIES --k K --out FILE
    ivfpq index eval INDEX QUERIES --ground-truth FILE --k K
    ivfpq index ground-truth BASE QUERIES --k K --out FILE
    ivfpq bench kmeans|kmeans-large-k|pq|ann [ARGS...]

Every error ends the command with one line on stderr and a non-zero exit status: 2 for a
bad argument, 1 for anything else (unreadable input, a failed computation). Progress
bars go to stderr, only when it is a terminal and ``--quiet`` is not given.

Layout: :mod:`.parser` (options and help), :mod:`.cluster` (demo, cluster),
:mod:`.index` (index build / search / eval / ground-truth), :mod:`.bench`, and
:mod:`._common` (errors, output, progress bars, reading inputs through
:mod:`ivfpq.datasets`).
"""

from __future__ import annotations

import os
import sys

from ._common import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_USAGE, CommandError, UsageError
from .bench import BENCHMARKS
from .cluster import DEMO_SETS
from .parser import build_parser

__all__ = ["main", "build_parser", "BENCHMARKS", "DEMO_SETS"]


def _command_name(args):
    parts = ["ivfpq", getattr(args, "command", None), getattr(args, "index_command", None)]
    return " ".join(p for p in parts if p)


def _one_line(exc):
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, MemoryError):
        text = f"out of memory ({text})"
    return " ".join(text.split())


def main(argv=None) -> int:
    """Run the ``ivfpq`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit status.

    Examples
    --------
    >>> from ivfpq.cli import main
    >>> main(["--version"])                                  # doctest: +SKIP
    ivfpq 0.1.0
    0
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as exc:
        print(_one_line(exc), file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help, --version
        return exc.code if isinstance(exc.code, int) else 0
    name = _command_name(args)
    try:
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(_one_line(exc), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (CommandError, ValueError, TypeError, OSError, ImportError, MemoryError) as exc:
        print(f"{name}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # a bug: still one line, the traceback on request
        if os.environ.get("IVFPQ_DEBUG"):
            raise
        print(f"{name}: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(set IVFPQ_DEBUG=1 to see the traceback)", file=sys.stderr)
        return EXIT_FAILURE
