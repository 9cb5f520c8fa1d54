"""Windows of packed tiles for the training datasets, from lazily opened HDF5 files.

Reads the ``s2`` and ``mask`` (and optionally ``s1``) datasets of packed files
(:mod:`cloudfree.packed`); writes nothing.  Handles open once per process, so a dataset
holding a reader works with any number of DataLoader workers (forked or spawned); small
tiles are kept in memory up to a budget.  A chunk that fails to read (a checksum mismatch,
a damaged or truncated file) raises InputDataError naming the file and the tile.
"""

from __future__ import annotations

import os
from typing import Any

import h5py
import numpy as np

from cloudfree.errors import InputDataError
from cloudfree.packed import Paths, TileRef, open_packed


class PackedReader:
    """Per-process lazy HDF5 handles and an optional in-memory tile cache.

    With ``with_s1`` the cache holds each tile's ``s1`` dataset too (:meth:`read_s1`).
    """

    def __init__(self, paths: Paths, cache_bytes: int, with_s1: bool = False) -> None:
        self.paths = [str(p) for p in paths]
        self.cache_bytes = cache_bytes
        self.s1 = with_s1
        self._reset()

    @property
    def datasets(self) -> tuple[str, ...]:
        """The datasets of a tile this reader reads (and caches)."""
        return ("s2", "mask", "s1") if self.s1 else ("s2", "mask")

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._handles: dict[int, h5py.File] = {}
        self._cache: dict[tuple[int, str], dict[str, np.ndarray]] = {}
        self._cached = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"paths": self.paths, "cache_bytes": self.cache_bytes, "s1": self.s1}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.paths, self.cache_bytes = state["paths"], state["cache_bytes"]
        self.s1 = state.get("s1", False)
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
        s2, mask = self._window(ref, ("s2", "mask"), dates, rows, cols)
        return s2, mask

    def read_mask(
        self, ref: TileRef, dates: slice | np.ndarray, rows: slice, cols: slice
    ) -> np.ndarray:
        """mask (T, h, w) uint8 of a window of a tile, as :meth:`read` gives it, without
        decoding the window's ``s2`` (2 bytes a pixel in every band, the mask 1): a
        tile that only lends its cloud mask (a gap donor) reads this."""
        (mask,) = self._window(ref, ("mask",), dates, rows, cols)
        return mask

    def read_s1(
        self, ref: TileRef, dates: slice | np.ndarray, rows: slice, cols: slice
    ) -> np.ndarray:
        """s1 (T, 2, h, w) float32 VV/VH dB (NaN: no S1) of a window of a tile (a reader
        made ``with_s1``); InputDataError naming the file and tile when it has none."""
        if not self.s1:
            raise ValueError("read_s1 of a PackedReader made without with_s1")
        (s1,) = self._window(ref, ("s1",), dates, rows, cols)
        return s1

    def _window(
        self,
        ref: TileRef,
        names: tuple[str, ...],
        dates: slice | np.ndarray,
        rows: slice,
        cols: slice,
    ) -> tuple[np.ndarray, ...]:
        key = (ref.file, ref.tile)
        if key not in self._cache:
            h5 = self.h5(ref.file)
            try:
                g = h5["tiles"][ref.tile]
                if "s1" in names and "s1" not in g:
                    raise InputDataError(
                        f"tile {ref.tile} of {self.paths[ref.file]} has no s1 dataset "
                        "(Sentinel-1); pack a source with Sentinel-1"
                    )
                size = sum(g[n].nbytes for n in self.datasets)
                if self._cached + size > self.cache_bytes:
                    return tuple(_select(g[n], dates, rows, cols) for n in names)
                self._cache[key] = {n: g[n][()] for n in self.datasets}
            except (OSError, KeyError) as exc:
                raise InputDataError(
                    f"tile {ref.tile} of {self.paths[ref.file]} is corrupted or unreadable "
                    f"({exc}); pack it again"
                ) from exc
            self._cached += size
        cached = self._cache[key]
        return tuple(_select(cached[n], dates, rows, cols) for n in names)


def _select(
    data: h5py.Dataset | np.ndarray, dates: slice | np.ndarray, rows: slice, cols: slice
) -> np.ndarray:
    """The window of a (T, H, W) or (T, K, H, W) array or dataset."""
    if data.ndim == 4:
        return data[dates, :, rows, cols]
    return data[dates, rows, cols]
