"""What every command shares: its errors, its output, its progress bars, its inputs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from tqdm.auto import tqdm

from ..datasets import read_input

EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A failure the user can act on; printed as one line, exit status 1."""


class UsageError(Exception):
    """A bad command line; printed as one line, exit status 2."""


def say(args, message):
    """Print a result line unless --quiet; a closed pipe (``| head``) stops printing, not work."""
    if getattr(args, "quiet", False):
        return
    try:
        print(message, flush=True)
    except BrokenPipeError:
        args.quiet = True
        try:  # later writes, and the flush at exit, go nowhere instead of failing
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass


def progress_enabled(args) -> bool:
    """Bars only for a person watching: stderr is a terminal and --quiet is off."""
    if getattr(args, "quiet", False):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def bar(enabled, **kwargs):
    """A tqdm bar on stderr that appears only after a second, and never when disabled."""
    return tqdm(disable=not enabled, delay=1.0, leave=False, file=sys.stderr, **kwargs)


def load_vectors(path, role, args, what="vectors", dataset=None):
    """The float32 vectors of an input (file, ``file.hdf5:dataset``, dataset folder),
    with a progress bar on big files; see :func:`ivfpq.datasets.read_input`."""
    with bar(progress_enabled(args), desc=f"reading {what}", unit="rows", unit_scale=True) as shown:
        def advance(done, total):
            shown.total = total
            shown.update(done - shown.n)

        return read_input(path, role, dataset=dataset, callback=advance)


def write_json(path, payload):
    """Write ``payload`` as indented JSON through a temporary file renamed into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


def check_out_dir(out):
    """``out`` as a folder, created if missing; a file there is an error."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"{out}: exists and is not a folder; --out needs a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out
