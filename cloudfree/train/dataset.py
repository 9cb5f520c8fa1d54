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
- ``doy`` (T,) int64: day of year of each date (0 on padding);
- ``gap`` (T, h, w) bool: the synthetic (training) or fixed (evaluation) gap mask;
- ``cloud`` (T, h, w) bool: the real cloud/shadow mask of the dates;
- ``pad`` (T,) bool: padding dates of a short training sequence (no data, never hidden).

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
import pandas as pd
import torch
from scipy.ndimage import binary_dilation
from torch.utils.data import Dataset

from cloudfree.bands import clear_pixels, cloudy
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.packed import (
    DATE_CLASSES,
    TileRef,
    _decode,
    open_packed,
    read_meta,
    read_tile,
)

Paths = Sequence[str | os.PathLike[str]]


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
        self, ref: TileRef, dates: slice | np.ndarray, rows: slice, cols: slice
    ) -> tuple[np.ndarray, np.ndarray]:
        """s2 (T, C, h, w) and mask (T, h, w) uint8 of a window of a tile.

        ``dates`` is a slice or increasing date indices (only those chunks are read).
        """
        key = (ref.file, ref.tile)
        h5 = self.h5(ref.file)
        if key not in self._cache:
            g = h5["tiles"][ref.tile]
            size = g["s2"].nbytes + g["mask"].nbytes
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
    cloud: np.ndarray | None = None,
    pad: np.ndarray | None = None,
) -> dict[str, torch.Tensor]:
    refl = s2.astype(np.float32) / np.float32(scale)
    norm = (refl - mean[None, :, None, None]) / std[None, :, None, None]
    avail = clear & ~gap
    x = np.where(avail[:, None], norm, np.float32(0))
    target = np.where(clear[:, None], norm, np.float32(0))
    t = clear.shape[0]
    return {
        "x": torch.from_numpy(x.astype(np.float32, copy=False)),
        "avail": torch.from_numpy(avail.astype(np.float32)),
        "target": torch.from_numpy(target.astype(np.float32, copy=False)),
        "known": torch.from_numpy(clear.copy()),
        "hidden": torch.from_numpy(clear & gap),
        "doy": torch.from_numpy(doy.astype(np.int64)),
        "gap": torch.from_numpy(gap.copy()),
        "cloud": torch.from_numpy(
            np.zeros(clear.shape, dtype=bool) if cloud is None else cloud.copy()
        ),
        "pad": torch.from_numpy(np.zeros(t, dtype=bool) if pad is None else pad.copy()),
    }


def _norm_arrays(norm: tuple[Sequence[float], Sequence[float]], c: int) -> tuple[np.ndarray, ...]:
    mean = np.asarray(norm[0], dtype=np.float32)
    std = np.asarray(norm[1], dtype=np.float32)
    if mean.shape != (c,) or std.shape != (c,):
        raise ConfigError(f"norm stats must have {c} values per band, got {mean.shape}")
    return mean, std


@dataclass(frozen=True)
class _Dates:
    """Date metadata of a tile, and the starts of the sequences a sampler may draw."""

    doy: np.ndarray  # (T,) int
    days: np.ndarray  # (T,) days since the first date
    date_class: np.ndarray  # (T,) codes of DATE_CLASSES
    eligible: np.ndarray  # indices of the dates sequences are drawn from
    runs: np.ndarray  # for each eligible start: length of the run (<= seq_len)


def _eligible(date_class: np.ndarray, codes: list[int] | None) -> np.ndarray:
    """Indices of the dates of the given class codes (all dates for None)."""
    if codes is None:
        return np.arange(len(date_class))
    return np.flatnonzero(np.isin(date_class, codes))


def _runs(days: np.ndarray, eligible: np.ndarray, seq_len: int, max_gap: int | None) -> np.ndarray:
    """Per eligible start, how many consecutive eligible dates (gap <= max_gap) follow."""
    n = len(eligible)
    out = np.zeros(n, dtype=np.int64)
    for p in range(n):
        r = 1
        while (
            r < seq_len
            and p + r < n
            and (max_gap is None or days[eligible[p + r]] - days[eligible[p + r - 1]] <= max_gap)
        ):
            r += 1
        out[p] = r
    return out


class TrainDataset(Dataset):
    """Self-supervised training samples (U-TILISE): sequences of a tile with synthetic gaps.

    Item ``i`` is a pure function of ``(seed, i)``, so results do not depend on the number of
    DataLoader workers or their order.  ``len`` is ``samples_per_epoch``; a training run
    usually draws ``steps * batch_size`` indices once.

    A sample is a random crop of a tile over a sequence of its dates: up to ``seq_len``
    consecutive dates of ``date_classes`` (``None``: every date) whose neighbours are at
    most ``max_gap_days`` apart, at least ``min_len`` of them; shorter sequences are padded
    at the end (``pad`` True, no data, never hidden).  Gaps are real cloud masks of another
    tile of the same file (region and split), at random dates of that tile, laid over a
    ``masked_fraction`` of the sequence's dates (``None``: over every date), optionally
    dilated by ``dilation`` pixels; at least one date of a sequence stays without a gap.
    ``hidden`` (the pixels a loss scores as masked) is ``gap & known``: never on padding or
    on pixels that are really cloudy.  Random flips and 90 degree rotations with ``augment``.

    Defaults reproduce the plain sampler: every date, ``seq_len=None`` = the smallest date
    count of the tiles, ``min_len=None`` = ``seq_len`` (no padding).

    Raises :class:`InputDataError` naming the regions and the thresholds to relax when the
    split is empty or no tile has a sequence that satisfies them.
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
        min_len: int | None = None,
        max_gap_days: int | None = None,
        date_classes: Sequence[str] | None = None,
        masked_fraction: float | None = None,
        dilation: int = 0,
    ) -> None:
        meta = read_meta(paths)
        self.meta = meta
        tiles = [t for t in meta.tiles if t.split == split]
        if not tiles:
            raise InputDataError(
                f"region(s) {', '.join(meta.regions)}: no {split!r} tiles in "
                f"{[str(p) for p in paths]}; the manifest's split column decides (for "
                "synthetic regions: regions.<name>.synthetic.val_fraction and test_fraction)"
            )
        self.mean, self.std = _norm_arrays(norm, len(meta.bands))
        smallest = min(min(t.height, t.width) for t in tiles)
        if not 1 <= crop <= smallest:
            raise ConfigError(
                f"crop {crop} must be between 1 and the smallest tile side {smallest}"
            )
        if masked_fraction is not None and not 0 <= masked_fraction <= 1:
            raise ConfigError(f"masked_fraction {masked_fraction} must be in [0, 1]")
        if dilation < 0:
            raise ConfigError(f"dilation {dilation} must be >= 0")
        unknown = sorted(set(date_classes or ()) - set(DATE_CLASSES))
        if unknown:
            raise ConfigError(f"date classes {unknown}: expected some of {list(DATE_CLASSES)}")
        codes = None if date_classes is None else [DATE_CLASSES[c] for c in date_classes]
        info = self._read_dates(paths, tiles)
        shortest = min(len(_eligible(info[(t.file, t.tile)][2], codes)) for t in tiles)
        self.seq_len = shortest if seq_len is None else int(seq_len)
        if min_len is None and not 1 <= self.seq_len <= shortest:
            raise ConfigError(f"seq_len {seq_len} must be between 1 and {shortest} dates")
        self.min_len = self.seq_len if min_len is None else int(min_len)
        if not 1 <= self.min_len <= self.seq_len:
            raise ConfigError(f"min_len {min_len} must be between 1 and seq_len {self.seq_len}")
        self.dates: dict[tuple[int, str], _Dates] = {}
        self._split_tiles = tiles  # gap donors: any tile of the split, usable or not
        self.tiles: list[TileRef] = []
        for ref in tiles:
            doy, days, cls = info[(ref.file, ref.tile)]
            elig = _eligible(cls, codes)
            runs = _runs(days, elig, self.seq_len, max_gap_days)
            self.dates[(ref.file, ref.tile)] = _Dates(doy, days, cls, elig, runs)
            if (runs >= self.min_len).any():
                self.tiles.append(ref)
        if not self.tiles:
            raise InputDataError(
                f"region(s) {', '.join(meta.regions)}: none of the {len(tiles)} {split!r} "
                f"tiles has {self.min_len} or more dates of classes "
                f"{list(date_classes or DATE_CLASSES)} within {max_gap_days} days of each "
                f"other; relax min_len, max_gap_days or date_classes, or the date class "
                f"thresholds ({'; '.join(self._class_sources(paths))})"
            )
        self.crop, self.samples, self.seed, self.augment = crop, samples_per_epoch, seed, augment
        self.masked_fraction, self.dilation = masked_fraction, int(dilation)
        self.reader = _PackedReader(paths, cache_bytes)

    @staticmethod
    def _read_dates(
        paths: Paths, tiles: list[TileRef]
    ) -> dict[tuple[int, str], tuple[np.ndarray, np.ndarray, np.ndarray]]:
        out = {}
        for i, path in enumerate(paths):
            with open_packed(path) as h5:
                for ref in tiles:
                    if ref.file == i:
                        g = h5["tiles"][ref.tile]
                        dates = pd.DatetimeIndex(pd.to_datetime(_decode(g["dates"][()])))
                        days = (dates - dates[0]).days.to_numpy().astype(np.int64)
                        cls = g["date_class"][()]
                        out[(i, ref.tile)] = (g["doy"][()], days, cls)
        return out

    @staticmethod
    def _class_sources(paths: Paths) -> list[str]:
        out = []
        for path in paths:
            with open_packed(path) as h5:
                out.append(f"{h5.attrs['region']}: {h5.attrs.get('date_class_source', '?')}")
        return out

    def close(self) -> None:
        """Close the HDF5 files opened in this process (they reopen on the next read)."""
        self.reader.close()

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.samples:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index])
        n = len(self.tiles)
        ti = int(rng.integers(n))
        ref = self.tiles[ti]
        info = self.dates[(ref.file, ref.tile)]
        length, c = self.seq_len, self.crop
        starts = np.flatnonzero(info.runs >= self.min_len)
        p = int(starts[rng.integers(len(starts))])
        idx = info.eligible[p : p + int(info.runs[p])]
        real = len(idx)
        y0 = int(rng.integers(ref.height - c + 1))
        x0 = int(rng.integers(ref.width - c + 1))
        dates = slice(int(idx[0]), int(idx[-1]) + 1) if idx[-1] - idx[0] + 1 == real else idx
        s2, mask = self.reader.read(ref, dates, slice(y0, y0 + c), slice(x0, x0 + c))
        clear, cloud = clear_pixels(s2, mask), cloudy(mask)
        gap = self._gap(ref, real, rng)
        doy = info.doy[idx].astype(np.int64)
        pad = np.zeros(length, dtype=bool)
        if real < length:  # pad at the end: no data, no gap
            pad[real:] = True
            s2 = np.concatenate([s2, np.zeros((length - real, *s2.shape[1:]), s2.dtype)])
            clear, cloud, gap = (
                np.concatenate([a, np.zeros((length - real, c, c), bool)])
                for a in (clear, cloud, gap)
            )
            doy = np.concatenate([doy, np.zeros(length - real, np.int64)])
        if self.augment:
            k, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
            s2, clear, gap, cloud = _augment([s2, clear, gap, cloud], k, flip)
        return _sample_dict(
            s2, clear, gap, doy, self.mean, self.std, self.meta.scale, cloud=cloud, pad=pad
        )

    def _donor(self, ref: TileRef, rng: np.random.Generator) -> TileRef:
        """Another tile of the same file (region), or the tile itself when it is alone."""
        same = [t for t in self._split_tiles if t.file == ref.file and t.tile != ref.tile]
        return same[int(rng.integers(len(same)))] if same else ref

    def _gap(self, ref: TileRef, real: int, rng: np.random.Generator) -> np.ndarray:
        """(real, crop, crop) synthetic gaps from another sequence's real cloud masks."""
        donor = self._donor(ref, rng)
        order = (
            rng.permutation(donor.dates)[:real]
            if donor.dates >= real
            else rng.integers(donor.dates, size=real)
        )
        gap = self._donor_gap(donor, order, rng)
        if self.masked_fraction is not None:
            k = round(self.masked_fraction * real)
            k = min(max(k, 1 if self.masked_fraction > 0 else 0), real - 1)
            # masked dates get the donor's cloudiest masks first, so k dates really are masked
            cover = gap.reshape(real, -1).mean(axis=1)
            masks = gap[np.argsort(-cover, kind="stable")]
            chosen = rng.permutation(real)[:k]
            gap = np.zeros_like(gap)
            gap[chosen] = masks[: len(chosen)]
        if self.dilation:
            for t in range(real):
                if gap[t].any():
                    gap[t] = binary_dilation(gap[t], iterations=self.dilation)
        masked = gap.any(axis=(1, 2))
        if real > 1 and masked.all():  # never mask every date
            gap[int(rng.integers(real))] = False
        elif real == 1:
            gap[:] = False
        return gap

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
        return cloudy(mask[order])


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
            series.s2,
            series.clear,
            gap,
            series.doy,
            self.mean,
            self.std,
            self.meta.scale,
            cloud=cloudy(series.mask),
        )
        item["tile"] = ref.tile
        item["file"] = ref.file
        return item

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def close(self) -> None:
        self.reader.close()
