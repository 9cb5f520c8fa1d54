"""Torch datasets over packed HDF5 files (see :mod:`cloudfree.packing`).

Training is self-supervised, as in U-TILISE: a random crop of a training tile keeps its own
clear pixels as the truth, and an artificial gap mask made of the cloud masks of another
tile's dates (random tile, random date order) hides part of them from the model.

Every sample is a dict of tensors (T dates, C bands, h x w pixels):

- ``x`` (T, C, h, w) float32: normalised reflectance, 0 where not available;
- ``avail`` (T, h, w) float32: 1 where the model sees the pixel (clear and not in a gap);
- ``target`` (T, C, h, w) float32: normalised reflectance of the truth, 0 where unknown;
- ``known`` (T, h, w) bool: the truth is known (the pixel is clear);
- ``hidden`` (T, h, w) bool: known but hidden by the gap (the pixels scored as "masked");
- ``doy`` (T,) int64: day of year of each date.

Datasets open their HDF5 files lazily, once per process, so they work with any number of
DataLoader workers (forked or spawned); ``__init__`` only reads metadata and closes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from .bands import CLEAR, MASK_NODATA, NODATA, REFLECTANCE_SCALE
from .errors import ConfigError, InputDataError
from .packing import open_packed, read_tile, tile_names

Paths = Sequence[str | os.PathLike[str]]


@dataclass(frozen=True)
class TileRef:
    """Where a tile lives and its shape."""

    file: int  # index into the dataset's paths
    tile: str
    split: str
    dates: int
    height: int
    width: int


@dataclass(frozen=True)
class PackedMeta:
    """Metadata shared by a set of packed files."""

    bands: list[str]
    scale: float
    regions: list[str]
    tiles: list[TileRef]


def read_meta(paths: Paths) -> PackedMeta:
    """Bands, scale, regions and tiles of packed files (which must share bands and scale)."""
    if not paths:
        raise ConfigError("no packed files given")
    bands: list[str] | None = None
    scale: float | None = None
    regions: list[str] = []
    tiles: list[TileRef] = []
    for i, path in enumerate(paths):
        with open_packed(path) as h5:
            fbands = [b.decode() if isinstance(b, bytes) else str(b) for b in h5.attrs["bands"]]
            fscale = float(h5.attrs.get("scale", REFLECTANCE_SCALE))
            if bands is None:
                bands, scale = fbands, fscale
            elif fbands != bands or fscale != scale:
                raise InputDataError(
                    f"{path}: bands {fbands} / scale {fscale} differ from {paths[0]}'s "
                    f"{bands} / {scale}"
                )
            regions.append(str(h5.attrs.get("region", os.path.basename(str(path)))))
            for name in tile_names(h5):
                g = h5["tiles"][name]
                t, _, hh, ww = g["s2"].shape
                tiles.append(TileRef(i, name, str(g.attrs["split"]), t, hh, ww))
    assert bands is not None and scale is not None
    return PackedMeta(bands, scale, regions, tiles)


def _clear(s2: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(T, H, W) clear pixels, as :attr:`TileSeries.clear`."""
    return (s2 != NODATA).any(axis=1) & (mask != MASK_NODATA) & (mask == CLEAR)


def _cloudy(mask: np.ndarray) -> np.ndarray:
    """Cloud-mask classes usable as artificial gaps: anything but clear and nodata."""
    return (mask != CLEAR) & (mask != MASK_NODATA)


def compute_norm_stats(paths: Paths, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std of reflectance (DN / scale) over the clear pixels of a split."""
    meta = read_meta(paths)
    c = len(meta.bands)
    n = 0
    s1 = np.zeros(c, dtype=np.float64)
    s2sum = np.zeros(c, dtype=np.float64)
    for path in paths:
        with open_packed(path) as h5:
            for name in tile_names(h5, split):
                g = h5["tiles"][name]
                for t in range(g["s2"].shape[0]):
                    img = g["s2"][t]  # (C, H, W)
                    clear = _clear(img[None], g["mask"][t][None])[0]
                    vals = img[:, clear].astype(np.float64) / meta.scale  # (C, N)
                    n += vals.shape[1]
                    s1 += vals.sum(axis=1)
                    s2sum += (vals**2).sum(axis=1)
    if n == 0:
        raise InputDataError(f"no clear pixels in the {split!r} tiles of {list(map(str, paths))}")
    mean = s1 / n
    std = np.sqrt(np.maximum(s2sum / n - mean**2, 0.0))
    return mean, np.maximum(std, 1e-4)


class _PackedReader:
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
        if os.getpid() != self._pid:  # forked: never reuse the parent's HDF5 handles
            self._stale = (self._handles, self._cache)
            self._reset()
        if file not in self._handles:
            self._handles[file] = open_packed(self.paths[file])
        return self._handles[file]

    def close(self) -> None:
        if os.getpid() == self._pid:
            for h in self._handles.values():
                h.close()
        self._reset()

    def read(
        self, ref: TileRef, dates: slice, rows: slice, cols: slice
    ) -> tuple[np.ndarray, np.ndarray]:
        """s2 (T, C, h, w) uint16 and mask (T, h, w) uint8 of a window of a tile."""
        key = (ref.file, ref.tile)
        h5 = self.h5(ref.file)
        if key not in self._cache:
            g = h5["tiles"][ref.tile]
            size = g["s2"].size * 2 + g["mask"].size
            if self._cached + size > self.cache_bytes:
                return (
                    g["s2"][dates, :, rows, cols],
                    g["mask"][dates, rows, cols],
                )
            self._cache[key] = (g["s2"][()], g["mask"][()])
            self._cached += size
        s2, mask = self._cache[key]
        return s2[dates, :, rows, cols], mask[dates, rows, cols]


def _augment(arrays: list[np.ndarray], k: int, flip: bool) -> list[np.ndarray]:
    out = []
    for a in arrays:
        a = np.rot90(a, k, axes=(-2, -1))
        if flip:
            a = a[..., ::-1]
        out.append(np.ascontiguousarray(a))
    return out


def _sample_dict(
    s2: np.ndarray,
    clear: np.ndarray,
    gap: np.ndarray,
    doy: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    scale: float,
) -> dict[str, torch.Tensor]:
    refl = s2.astype(np.float32) / np.float32(scale)
    norm = (refl - mean[None, :, None, None]) / std[None, :, None, None]
    avail = clear & ~gap
    x = np.where(avail[:, None], norm, np.float32(0))
    target = np.where(clear[:, None], norm, np.float32(0))
    return {
        "x": torch.from_numpy(x.astype(np.float32, copy=False)),
        "avail": torch.from_numpy(avail.astype(np.float32)),
        "target": torch.from_numpy(target.astype(np.float32, copy=False)),
        "known": torch.from_numpy(clear.copy()),
        "hidden": torch.from_numpy(clear & gap),
        "doy": torch.from_numpy(doy.astype(np.int64)),
    }


def _norm_arrays(norm: tuple[Sequence[float], Sequence[float]], c: int) -> tuple[np.ndarray, ...]:
    mean = np.asarray(norm[0], dtype=np.float32)
    std = np.asarray(norm[1], dtype=np.float32)
    if mean.shape != (c,) or std.shape != (c,):
        raise ConfigError(f"norm stats must have {c} values per band, got {mean.shape}")
    return mean, std


class TrainDataset(Dataset):
    """Self-supervised training samples: random crops of the ``split`` tiles with gaps.

    Item ``i`` is a pure function of ``(seed, i)``, so results do not depend on the number of
    DataLoader workers or their order.  ``len`` is ``samples_per_epoch``; a training run
    usually draws ``steps * batch_size`` indices once.

    Sequence length: ``seq_len=None`` uses the smallest date count of the tiles (all dates
    when, as in the default data, every tile has the same number); a tile with more dates
    contributes a random window of ``seq_len`` consecutive dates.

    Args:
        paths: packed files.
        norm: per-band (mean, std) of reflectance, e.g. from :func:`compute_norm_stats`.
        crop: crop size in pixels (at most the smallest tile side).
        samples_per_epoch: dataset length.
        seq_len: dates per sample (see above).
        seed: base seed.
        augment: random flips and 90 degree rotations.
        split: tiles to draw from; gap donors are the other tiles of that split.
        cache_bytes: per-process budget for keeping whole tiles in memory.
    """

    def __init__(
        self,
        paths: Paths,
        norm: tuple[Sequence[float], Sequence[float]],
        *,
        crop: int = 32,
        samples_per_epoch: int = 1000,
        seq_len: int | None = None,
        seed: int = 0,
        augment: bool = True,
        split: str = "train",
        cache_bytes: int = 256 << 20,
    ) -> None:
        meta = read_meta(paths)
        self.meta = meta
        self.tiles = [t for t in meta.tiles if t.split == split]
        if not self.tiles:
            raise InputDataError(f"no {split!r} tiles in {[str(p) for p in paths]}")
        self.mean, self.std = _norm_arrays(norm, len(meta.bands))
        smallest = min(min(t.height, t.width) for t in self.tiles)
        if not 1 <= crop <= smallest:
            raise ConfigError(
                f"crop {crop} must be between 1 and the smallest tile side {smallest}"
            )
        shortest = min(t.dates for t in self.tiles)
        self.seq_len = shortest if seq_len is None else int(seq_len)
        if not 1 <= self.seq_len <= shortest:
            raise ConfigError(f"seq_len {seq_len} must be between 1 and {shortest} dates")
        self.crop, self.samples, self.seed, self.augment = crop, samples_per_epoch, seed, augment
        self.reader = _PackedReader(paths, cache_bytes)
        self._doy: dict[tuple[int, str], np.ndarray] = {}
        for i, path in enumerate(paths):
            with open_packed(path) as h5:
                for ref in self.tiles:
                    if ref.file == i:
                        self._doy[(i, ref.tile)] = h5["tiles"][ref.tile]["doy"][()]

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.samples:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index])
        n = len(self.tiles)
        ti = int(rng.integers(n))
        ref = self.tiles[ti]
        length, c = self.seq_len, self.crop
        t0 = int(rng.integers(ref.dates - length + 1))
        y0 = int(rng.integers(ref.height - c + 1))
        x0 = int(rng.integers(ref.width - c + 1))
        dates = slice(t0, t0 + length)
        s2, mask = self.reader.read(ref, dates, slice(y0, y0 + c), slice(x0, x0 + c))
        clear = _clear(s2, mask)
        # Gap donor: another tile (if any), its dates in random order.
        if n > 1:
            di = int(rng.integers(n - 1))
            donor = self.tiles[di + 1 if di >= ti else di]
        else:
            donor = ref
        order = (
            rng.permutation(donor.dates)[:length]
            if donor.dates >= length
            else rng.integers(donor.dates, size=length)
        )
        gap = self._donor_gap(donor, order, rng)
        doy = self._doy[(ref.file, ref.tile)][dates]
        if self.augment:
            k, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
            s2, clear, gap = _augment([s2, clear, gap], k, flip)
        return _sample_dict(s2, clear, gap, doy, self.mean, self.std, self.meta.scale)

    def _donor_gap(self, donor: TileRef, order: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        c = self.crop
        if donor.height >= c and donor.width >= c:
            y0 = int(rng.integers(donor.height - c + 1))
            x0 = int(rng.integers(donor.width - c + 1))
            _, mask = self.reader.read(donor, slice(None), slice(y0, y0 + c), slice(x0, x0 + c))
        else:  # tile a small donor mask up to the crop
            _, mask = self.reader.read(donor, slice(None), slice(None), slice(None))
            reps = (1, -(-c // mask.shape[1]), -(-c // mask.shape[2]))
            mask = np.tile(mask, reps)[:, :c, :c]
        return _cloudy(mask[order])


class EvalTiles(Dataset):
    """Whole tiles of a split with their fixed evaluation gaps, one item per tile.

    Input availability is ``clear & ~gap``; ``hidden`` is ``clear & gap`` (all False for a
    tile without a ``gap`` dataset).  Items add ``tile`` (str) and ``file`` (int) to the
    tensors of the module docstring; use ``batch_size=1`` or iterate directly, since tiles
    may differ in size and date count.
    """

    def __init__(
        self,
        paths: Paths,
        norm: tuple[Sequence[float], Sequence[float]],
        split: str = "val",
    ) -> None:
        self.meta = read_meta(paths)
        self.tiles = [t for t in self.meta.tiles if t.split == split]
        self.mean, self.std = _norm_arrays(norm, len(self.meta.bands))
        self.reader = _PackedReader(paths, cache_bytes=0)

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ref = self.tiles[index]
        series = read_tile(self.reader.h5(ref.file), ref.tile)
        gap = series.gap if series.gap is not None else np.zeros(series.mask.shape, dtype=bool)
        item: dict[str, Any] = _sample_dict(
            series.s2, series.clear, gap, series.doy, self.mean, self.std, self.meta.scale
        )
        item["tile"] = ref.tile
        item["file"] = ref.file
        return item

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def close(self) -> None:
        self.reader.close()


def worker_init_fn(worker_id: int) -> None:
    """DataLoader worker setup: one intra-op thread (samples seed themselves by index)."""
    del worker_id
    torch.set_num_threads(1)
