"""Windows of packed tiles for the training datasets, from lazily opened HDF5 files.

Reads the ``s2`` and ``mask`` datasets of packed files (:mod:`cloudfree.packed`); writes
nothing.  Handles open once per process, so a dataset holding a reader works with any number
of DataLoader workers (forked or spawned); small tiles are kept in memory up to a budget.
A chunk that fails to read (a checksum mismatch, a damaged or truncated file) raises
InputDataError naming the file and the tile.
"""

from __future__ import annotations

import os
from typing import Any

import h5py
import numpy as np

from cloudfree.errors import InputDataError
from cloudfree.packed import Paths, TileRef, open_packed


class PackedReader:
    """Per-process lazy HDF5 handles and an optional in-memory tile cache."""

    def __init__(self, paths: Paths, cache_bytes: int) -> None:
        self.paths = [str(p) for p in paths]
        self.cache_bytes = cache_bytes
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._handles: dict[int, h5py.File] = {}
        self._cache: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
        self._cached = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"paths": self.paths, "cache_bytes": self.cache_bytes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.paths, self.cache_bytes = state["paths"], state["cache_bytes"]
        self._reset()

    def h5(self, file: int) -> h5py.File:
        """Packed file ``file`` (an index into ``paths``), opened in this process."""
        if os.getpid() != self._pid:  # forked: never reuse the parent's HDF5 handles
            self._stale = (self._handles, self._cache)
            self._reset()
        if file not in self._handles:
            self._handles[file] = open_packed(self.paths[file])
        return self._handles[file]

    def close(self) -> None:
        """Close the files opened in this process (they reopen on the next read)."""
        if os.getpid() == self._pid:
            for h in self._handles.values():
                h.close()
        self._reset()

    def read(
        self, ref: TileRef, dates: slice | np.ndarray, rows: slice, cols: slice
    ) -> tuple[np.ndarray, np.ndarray]:
        """s2 (T, C, h, w) and mask (T, h, w) uint8 of a window of a tile.

        ``dates`` is a slice or increasing date indices (only those chunks are read).  Raises
        InputDataError naming the file and tile when the tile cannot be read.
        """
        key = (ref.file, ref.tile)
        if key not in self._cache:
            h5 = self.h5(ref.file)
            try:
                g = h5["tiles"][ref.tile]
                size = g["s2"].nbytes + g["mask"].nbytes
                if self._cached + size > self.cache_bytes:
                    return (
                        g["s2"][dates, :, rows, cols],
                        g["mask"][dates, rows, cols],
                    )
                self._cache[key] = (g["s2"][()], g["mask"][()])
            except (OSError, KeyError) as exc:
                raise InputDataError(
                    f"tile {ref.tile} of {self.paths[ref.file]} is corrupted or unreadable "
                    f"({exc}); pack it again"
                ) from exc
            self._cached += size
        s2, mask = self._cache[key]
        return s2[dates, :, rows, cols], mask[dates, rows, cols]
