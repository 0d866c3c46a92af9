"""Inverted lists stored in one growing pool of rows.

Each list owns a contiguous segment ``offsets[l] : offsets[l] + capacities[l]`` of a
shared pool, of which the first ``sizes[l]`` rows are live. A list that outgrows its
segment moves to a new segment, twice as large, at the end of the pool, and the pool
itself doubles when full; the abandoned segments are reclaimed by a compaction once
they take more than half of the pool. Every row is therefore copied O(1) times on
average, whatever the pattern of ``add`` calls, and the kernels see flat arrays.

Several payloads (e.g. PQ codes and raw vectors) can share the layout.
"""

from __future__ import annotations

import numpy as np

from ..kernels.ivf import compact_lists, mark_removed, move_segments

_MIN_CAPACITY = 8


class InvertedLists:
    def __init__(self, nlist: int, payloads: dict):
        """``payloads``: name -> (width, dtype) of each row's stored data."""
        self.nlist = nlist
        self.specs = {name: (int(width), np.dtype(dtype)) for name, (width, dtype) in payloads.items()}
        self.offsets = np.zeros(nlist, dtype=np.int64)
        self.sizes = np.zeros(nlist, dtype=np.int64)
        self.capacities = np.zeros(nlist, dtype=np.int64)
        self.end = 0  # rows of the pool handed out to segments
        self.garbage = 0  # rows in abandoned segments
        self._allocate_pool(0)

    # -- pool management ---------------------------------------------------------------

    def _allocate_pool(self, rows):
        self.ids = np.empty(rows, dtype=np.int64)
        self.data = {name: np.empty((rows, width), dtype=dtype) for name, (width, dtype) in self.specs.items()}

    @property
    def pool_rows(self) -> int:
        return self.ids.shape[0]

    @property
    def ntotal(self) -> int:
        return int(self.sizes.sum())

    def _ensure_pool(self, rows_needed):
        if rows_needed <= self.pool_rows:
            return
        new_rows = max(rows_needed, 2 * self.pool_rows, 1024)
        old_ids, old_data = self.ids, self.data
        self._allocate_pool(new_rows)
        self.ids[: self.end] = old_ids[: self.end]
        for name, arr in old_data.items():
            self.data[name][: self.end] = arr[: self.end]

    def compact(self, spare=True):
        """Pack the lists contiguously, in list order (``spare=False`` also drops headroom)."""
        capacities = self.capacities if spare else self.sizes.copy()
        new_offsets = np.zeros(self.nlist, dtype=np.int64)
        np.cumsum(capacities[:-1], out=new_offsets[1:])
        total = int(capacities.sum())
        old_ids, old_data = self.ids, self.data
        self._allocate_pool(max(total, 0))
        self._copy_lists(old_ids, self.ids, new_offsets)
        for name in self.data:
            self._copy_lists(old_data[name], self.data[name], new_offsets)
        self.offsets = new_offsets
        self.capacities = capacities.copy()
        self.end = total
        self.garbage = 0

    def _copy_lists(self, src, dst, new_offsets):
        # One slice per non-empty list; only called on compaction and saving.
        for l in np.flatnonzero(self.sizes):
            a, b, n = self.offsets[l], new_offsets[l], self.sizes[l]
            dst[b:b + n] = src[a:a + n]

    # -- add / remove ------------------------------------------------------------------

    def add(self, labels, ids, **rows):
        """Append row ``i`` of each payload in ``rows`` (and ``ids[i]``) to list ``labels[i]``."""
        n = labels.shape[0]
        if n == 0:
            return
        counts = np.bincount(labels, minlength=self.nlist).astype(np.int64)
        need = self.sizes + counts
        grow = np.flatnonzero(need > self.capacities)
        if grow.size:
            new_caps = np.maximum(np.maximum(need[grow], 2 * self.capacities[grow]), _MIN_CAPACITY)
            new_offsets = self.end + np.concatenate(([0], np.cumsum(new_caps)[:-1]))
            new_end = self.end + int(new_caps.sum())
            self._ensure_pool(new_end)
            moving = grow[self.sizes[grow] > 0]
            if moving.size:
                src = self.offsets[moving]
                dst = new_offsets[np.searchsorted(grow, moving)]
                cnt = self.sizes[moving]
                move_segments(self.ids, src, dst, cnt)
                for arr in self.data.values():
                    move_segments(arr, src, dst, cnt)
            self.garbage += int(self.capacities[grow].sum())
            self.offsets[grow] = new_offsets
            self.capacities[grow] = new_caps
            self.end = new_end

        order = np.argsort(labels, kind="stable")
        sorted_labels = labels[order]
        group_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
        rank = np.arange(n, dtype=np.int64) - group_start[sorted_labels]
        dest = self.offsets[sorted_labels] + self.sizes[sorted_labels] + rank
        self.ids[dest] = ids[order]
        for name, values in rows.items():
            self.data[name][dest] = values[order]
        self.sizes += counts

        if self.garbage > self.end // 2 and self.garbage > 4096:
            self.compact()

    def remove(self, ids) -> int:
        """Remove every entry whose id is in ``ids``; return how many were removed."""
        sorted_ids = np.unique(np.asarray(ids, dtype=np.int64))
        if sorted_ids.size == 0 or self.end == 0:
            return 0
        keep = np.ones(self.end, dtype=np.bool_)
        removed = mark_removed(self.ids, self.offsets, self.sizes, sorted_ids, keep)
        total = int(removed.sum())
        if total:
            compact_lists(self.ids, self.offsets, self.sizes, keep)
            for arr in self.data.values():
                compact_lists(arr, self.offsets, self.sizes, keep)
            self.sizes -= removed
        return total

    # -- views and persistence -----------------------------------------------------------

    def list_ids(self, l):
        return self.ids[self.offsets[l]: self.offsets[l] + self.sizes[l]]

    def list_data(self, name, l):
        return self.data[name][self.offsets[l]: self.offsets[l] + self.sizes[l]]

    def live_rows(self):
        """The pool rows that hold list entries, list by list (rows between lists are
        spare capacity)."""
        sizes = self.sizes
        return np.arange(int(sizes.sum())) + np.repeat(self.offsets - (np.cumsum(sizes) - sizes), sizes)

    def packed(self):
        """(sizes, ids, {name: rows}) with the lists back to back, in list order."""
        offsets = np.zeros(self.nlist, dtype=np.int64)
        np.cumsum(self.sizes[:-1], out=offsets[1:])
        total = self.ntotal
        ids = np.empty(total, dtype=np.int64)
        self._copy_lists(self.ids, ids, offsets)
        data = {}
        for name, arr in self.data.items():
            out = np.empty((total, arr.shape[1]), dtype=arr.dtype)
            self._copy_lists(arr, out, offsets)
            data[name] = out
        return self.sizes.copy(), ids, data

    @classmethod
    def from_packed(cls, nlist, payloads, sizes, ids, data):
        lists = cls(nlist, payloads)
        total = int(sizes.sum())
        lists.sizes = sizes.astype(np.int64).copy()
        lists.capacities = lists.sizes.copy()
        np.cumsum(lists.sizes[:-1], out=lists.offsets[1:])
        lists._allocate_pool(total)
        lists.ids[:] = ids
        for name in lists.data:
            lists.data[name][:] = data[name]
        lists.end = total
        return lists
