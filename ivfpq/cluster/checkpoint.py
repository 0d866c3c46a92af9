"""Checkpoints of a k-means fit: the loop's whole state, written atomically, resumed bit
for bit.

``KMeans(checkpoint="run.ckpt", checkpoint_every=N)`` writes, every ``N`` counted
iterations, one versioned ``.npz`` file (through :mod:`ivfpq._storage`: a temporary
file renamed over the old one, loaded without pickle) holding

* a fingerprint of the data (shape, loop dtype, per-feature ranges, the maximum
  weight and a hash of a fixed sample of rows) and of the parameters;
* which of the ``n_init`` runs is under way, the random generator's state after that
  run drew its initialisation, and the best earlier run;
* the Lloyd loop's state (:func:`ivfpq.cluster.lloyd.lloyd`): centroids, fixed-point
  sums, every row's label, distance and assigner memory, the assigner itself (for
  mop: the graph over the centroids), the stopping rule's counters and the history.

A fit started again with the same data and parameters continues from the file and
ends exactly as the uninterrupted fit would; the file is removed when the fit
completes. A file of other data or other parameters is refused with a ``ValueError``
that says which.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from .._storage import FileFormatError, read_archive, register_format, save
from .executor import gather_rows

__all__ = ["Checkpoint", "data_fingerprint", "params_fingerprint"]

_FORMAT = "kmeans_checkpoint"
_FINGERPRINT_ROWS = 1024
# Parameters that may change between a run and its resumption without changing the result.
_FREE_PARAMS = ("checkpoint", "checkpoint_every", "verbose", "n_threads", "copy_x")


def data_fingerprint(ex, blocks, stats):
    """A short description of the loop data that any change of rows is likely to alter."""
    n, max_abs, max_weight = stats
    rows = np.unique(np.linspace(0, n - 1, min(n, _FINGERPRINT_ROWS)).astype(np.int64))
    sample = np.ascontiguousarray(gather_rows(ex, blocks, rows))
    return {"n_rows": int(n), "n_features": int(ex.n_features), "dtype": str(ex.dtype),
            "max_weight": float(max_weight),
            "max_abs": hashlib.sha256(np.asarray(max_abs, dtype=np.float64).tobytes()).hexdigest(),
            "rows": hashlib.sha256(sample.tobytes()).hexdigest()}


def params_fingerprint(params):
    """The parameters that decide the result, as JSON values (arrays by their hash)."""
    out = {}
    for name, value in sorted(params.items()):
        if name in _FREE_PARAMS:
            continue
        if isinstance(value, np.ndarray):
            value = "array:" + hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        elif isinstance(value, (np.random.Generator, np.random.RandomState)) or callable(value):
            value = f"<{type(value).__name__}>"
        elif isinstance(value, (np.integer, np.floating)):
            value = value.item()
        out[name] = value
    return out


def _rng_state_to_json(rng):
    return json.dumps(rng.bit_generator.state, default=int)


@register_format(_FORMAT, version=1)
class Checkpoint:
    """One checkpoint file: where it lives, how often to write, what to resume from.

    The Lloyd loop reads ``every`` and ``resume`` and calls :meth:`save`; ``KMeans.fit``
    sets the run-level fields (:meth:`start_run`, :meth:`finish_run`).
    """

    def __init__(self, path, every, data, params):
        self.path = os.fspath(path)
        self.every = int(every)
        self.data = data
        self.params = params
        self.run = 0
        self.rng_state = None
        self.assigner_seed = None
        self.best = None  # (meta, arrays) of the best finished run
        self.resume = None  # (meta, arrays) of the loop, when resuming the current run
        self._loop = None

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(cls, path, every, data, params):
        """A checkpoint at ``path``: the one found there (checked against ``data`` and
        ``params``), or a new one when there is no file."""
        checkpoint = cls(path, every, data, params)
        if not os.path.exists(checkpoint.path):
            return checkpoint
        archive = read_archive(checkpoint.path)
        if archive.format_name != _FORMAT:
            raise FileFormatError(f"{checkpoint.path!r} holds a {archive.format_name!r}, not a k-means checkpoint")
        found = archive.param("data")
        changed = [k for k in sorted(set(found) | set(data)) if found.get(k) != data.get(k)]
        if changed:
            raise ValueError(
                f"checkpoint {checkpoint.path!r} was written for other data ({', '.join(changed)} "
                "differ); remove the file or pass the data it was made with"
            )
        found = archive.param("params")
        changed = [k for k in sorted(set(found) | set(params)) if found.get(k) != params.get(k)]
        if changed:
            details = ", ".join(f"{k}={found.get(k)!r} there, {params.get(k)!r} now" for k in changed)
            raise ValueError(
                f"checkpoint {checkpoint.path!r} was written with other parameters ({details}); "
                "remove the file or fit with the parameters it was made with"
            )
        checkpoint.run = int(archive.param("run"))
        checkpoint.rng_state = archive.param("rng_state")
        checkpoint.assigner_seed = archive.param("assigner_seed")
        arrays = dict(archive.arrays)
        best = archive.param("best")
        if best is not None:
            checkpoint.best = (best, {k[5:]: v for k, v in arrays.items() if k.startswith("best_")})
        checkpoint.resume = (archive.param("loop"), {k[5:]: v for k, v in arrays.items()
                                                     if k.startswith("loop_")})
        return checkpoint

    @property
    def resumed_at(self):
        """The iteration the current run resumes from (0 for a fresh start)."""
        return 0 if self.resume is None else int(self.resume[0]["loop"]["n_iter"])

    # -- the run's fields --------------------------------------------------------------------

    def start_run(self, run, rng, assigner_seed):
        """A fresh run ``run`` begins, its initialisation drawn from ``rng``."""
        self.run = run
        self.rng_state = _rng_state_to_json(rng)
        self.assigner_seed = assigner_seed
        self.resume = None

    def restore_rng(self, rng):
        rng.bit_generator.state = json.loads(self.rng_state)

    def finish_run(self, best_meta, best_arrays):
        """The best run so far, kept for the runs that follow."""
        self.best = (best_meta, best_arrays)
        self.resume = None

    # -- writing -------------------------------------------------------------------------------

    def save(self, loop_meta, loop_arrays):
        """Write the whole state atomically (called by the loop every ``every`` iterations)."""
        self._loop = (loop_meta, loop_arrays)
        save(self, self.path)

    def remove(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def _to_arrays(self):
        loop_meta, loop_arrays = self._loop
        meta = {"data": self.data, "params": self.params, "run": self.run, "rng_state": self.rng_state,
                "assigner_seed": self.assigner_seed, "loop": loop_meta,
                "best": None if self.best is None else self.best[0]}
        arrays = {"loop_" + k: v for k, v in loop_arrays.items()}
        if self.best is not None:
            arrays.update({"best_" + k: v for k, v in self.best[1].items()})
        return meta, arrays

    @classmethod
    def _from_arrays(cls, archive):
        raise FileFormatError(
            f"{archive.path!r} is a k-means checkpoint: resume it with KMeans(checkpoint=...).fit(X)"
        )
