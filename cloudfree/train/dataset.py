"""Torch datasets over packed HDF5 files (see :mod:`cloudfree.packed`).

Training is self-supervised, as in U-TILISE: a random crop of a training tile keeps its own
clear pixels as the truth, and an artificial gap mask made of the cloud masks of another
tile's dates (random tile, random date order) hides part of them from the model.  Validation
scores whole tiles with the fixed evaluation gaps stored at packing time.
:func:`check_training_data` stops a run before training when there is nothing to learn from,
:func:`check_s1_data` when a model with Sentinel-1 input (``train.inputs.s1``) would train on
a file without it.

Items are the samples of :mod:`cloudfree.train.samples`.  Datasets read the packed files
lazily, once per process (:class:`cloudfree.train.reader.PackedReader`), so they work with any
number of DataLoader workers; ``__init__`` only reads metadata and closes.  Nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.ndimage import binary_dilation

from cloudfree.bands import clear_pixels, cloudy
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.extras import missing_extra
from cloudfree.models.s1 import scale_s1
from cloudfree.packed import (
    DATE_CLASSES,
    PackedMeta,
    Paths,
    TileRef,
    compute_norm_stats,
    open_packed,
    read_meta,
    read_tile,
    reading,
)
from cloudfree.train.reader import PackedReader
from cloudfree.train.samples import norm_arrays, rotate_flip, sample_dict
from cloudfree.train.sequences import (
    TileDates,
    class_sources,
    eligible_dates,
    read_dates,
    run_lengths,
)

try:
    import torch
    from torch.utils.data import Dataset
except ImportError as exc:
    raise missing_extra("torch", "train") from exc

MASKINGS = ("donor", "utilise")
UTILISE_MIN_COVER = 0.1  # U-TILISE's donor masks cover at least this share of the crop
# seq_len null: every date of the shortest tile, but at most this many.  A step costs about
# the square of the dates of its sequences (the attention maps mix every skip at full
# resolution), so a long series trains on sub-sequences; inference still uses every date.
AUTO_SEQ_LEN = 24


def check_training_data(paths: Sequence[str], meta: PackedMeta) -> tuple[np.ndarray, np.ndarray]:
    """Fail before training when there is nothing to learn from; return the norm stats.

    Raises InputDataError naming the regions and the settings to relax when no tile is in
    the ``train`` split or the training tiles have no clear pixel at all.
    """
    regions = ", ".join(meta.regions)
    if not any(t.split == "train" for t in meta.tiles):
        splits = sorted({t.split for t in meta.tiles})
        raise InputDataError(
            f"region(s) {regions}: no training tiles in {paths} (splits present: {splits}); "
            "relax the split settings of the region's source (e.g. "
            "regions.<region>.synthetic.val_fraction / test_fraction) or the packing "
            "thresholds that drop cloudy tiles and dates, so that some tiles train"
        )
    try:
        mean, std = compute_norm_stats(paths, "train")
    except InputDataError as exc:
        raise InputDataError(
            f"region(s) {regions}: the training tiles have no clear date or pixel ({exc}); "
            "relax the cloud thresholds used when selecting tiles and dates (packing and "
            "the region's source settings) or add tiles"
        ) from exc
    return mean, std


def check_s1_data(paths: Paths) -> None:
    """Raise InputDataError naming the file, its tiles without an ``s1`` dataset and
    ``train.inputs.s1`` unless every tile of every file has Sentinel-1 (metadata only)."""
    for path in paths:
        with open_packed(path) as h5, reading(h5):
            lacking = [name for name in sorted(h5["tiles"]) if "s1" not in h5["tiles"][name]]
            every = len(lacking) == len(h5["tiles"])
        if lacking:
            which = "" if every else f" in tile(s) {', '.join(lacking)}"
            raise InputDataError(
                f"train.inputs.s1 is true but {path} has no s1 dataset{which}: pack a source "
                "with Sentinel-1 (synthetic.s1, sen12mscrts s1, folder s1, stac.s1) or set "
                "train.inputs.s1: false"
            )


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
    on pixels that are really cloudy.  ``masking`` ``utilise`` lays masks, as U-TILISE does,
    on a random number of dates up to half of them, never the first, taken from donor dates
    with at least UTILISE_MIN_COVER of cloud.  ``augment`` (``train.augment``): random flips
    and 90 degree rotations, a reflectance gain and offset per date (input and target
    alike) and a shift of the days of year.  With ``with_s1`` samples also hold the Sentinel-1
    input of the same dates and crop (``s1`` of :mod:`cloudfree.train.samples`), flipped and
    rotated with the rest; the gain and offset are optical only.

    The sampling keywords are those of ``train.sampling``; with all of them None (and no
    dilation) this is the plain sampler: every date, ``seq_len`` the smallest date count of
    the tiles but at most AUTO_SEQ_LEN (a longer series trains on sub-sequences of that many
    consecutive dates, each start equally likely), ``min_len`` = ``seq_len`` (no padding).

    Raises :class:`InputDataError` naming the regions and the thresholds to relax when the
    split is empty or no tile has a sequence that satisfies them, and (``with_s1``) naming
    the file when a tile has no ``s1`` dataset (:func:`check_s1_data`).
    """

    def __init__(
        self,
        paths: Paths,
        norm: tuple[Sequence[float], Sequence[float]],
        *,
        crop: int,
        samples_per_epoch: int,
        seed: int,
        seq_len: int | None,
        min_len: int | None,
        max_gap_days: int | None,
        date_classes: Sequence[str] | None,
        masked_fraction: float | None,
        dilation: int,
        masking: str,
        augment: Mapping[str, Any],
        split: str = "train",
        cache_bytes: int = 256 << 20,
        with_s1: bool = False,
    ) -> None:
        meta = read_meta(paths)
        if with_s1:
            check_s1_data(paths)
        self.meta = meta
        tiles = [t for t in meta.tiles if t.split == split]
        if not tiles:
            raise InputDataError(
                f"region(s) {', '.join(meta.regions)}: no {split!r} tiles in "
                f"{[str(p) for p in paths]}; the manifest's split column decides (for "
                "synthetic regions: regions.<name>.synthetic.val_fraction and test_fraction)"
            )
        self.mean, self.std = norm_arrays(norm, len(meta.bands))
        smallest = min(min(t.height, t.width) for t in tiles)
        if not 1 <= crop <= smallest:
            raise ConfigError(
                f"train.crop {crop} must be between 1 and the smallest tile side {smallest}"
            )
        codes = None if date_classes is None else [DATE_CLASSES[c] for c in date_classes]
        info = read_dates(paths, tiles)
        shortest = min(len(eligible_dates(info[(t.file, t.tile)][2], codes)) for t in tiles)
        self.seq_len = min(shortest, AUTO_SEQ_LEN) if seq_len is None else int(seq_len)
        if min_len is None and not 1 <= self.seq_len <= shortest:
            classes = list(date_classes or DATE_CLASSES)
            if seq_len is None:
                raise ConfigError(
                    f"train.sampling.seq_len null takes the fewest usable dates (classes "
                    f"{classes}) of a {split!r} tile, here {shortest}: set seq_len and min_len "
                    "(sequences with fewer dates are padded)"
                )
            raise ConfigError(
                f"train.sampling.seq_len {seq_len} must be between 1 and {shortest} dates "
                f"(the fewest usable dates, classes {classes}, of a {split!r} tile), or set "
                "train.sampling.min_len"
            )
        self.min_len = self.seq_len if min_len is None else int(min_len)
        if not 1 <= self.min_len <= self.seq_len:
            raise ConfigError(
                f"train.sampling.min_len {min_len} must be between 1 and "
                f"train.sampling.seq_len {self.seq_len}"
            )
        self.dates: dict[tuple[int, str], TileDates] = {}
        self._split_tiles = tiles  # gap donors: any tile of the split, usable or not
        self.tiles: list[TileRef] = []
        for ref in tiles:
            doy, days, cls = info[(ref.file, ref.tile)]
            elig = eligible_dates(cls, codes)
            runs = run_lengths(days, elig, self.seq_len, max_gap_days)
            self.dates[(ref.file, ref.tile)] = TileDates(doy, days, cls, elig, runs)
            if (runs >= self.min_len).any():
                self.tiles.append(ref)
        if not self.tiles:
            raise InputDataError(
                f"region(s) {', '.join(meta.regions)}: none of the {len(tiles)} {split!r} "
                f"tiles has {self.min_len} or more dates of classes "
                f"{list(date_classes or DATE_CLASSES)} within {max_gap_days} days of each "
                "other; relax train.sampling.min_len, max_gap_days or date_classes, or the "
                f"date class thresholds ({'; '.join(class_sources(paths))})"
            )
        if masking not in MASKINGS:
            raise ConfigError(f"train.sampling.masking {masking!r}: expected one of {MASKINGS}")
        self.crop, self.samples, self.seed = crop, samples_per_epoch, seed
        self.augment = dict(augment)
        self.masked_fraction, self.dilation = masked_fraction, int(dilation)
        self.masking = masking
        self.s1 = with_s1
        self.reader = PackedReader(paths, cache_bytes, with_s1=with_s1)

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
        rows, cols = slice(y0, y0 + c), slice(x0, x0 + c)
        s2, mask = self.reader.read(ref, dates, rows, cols)
        radar = [scale_s1(self.reader.read_s1(ref, dates, rows, cols))] if self.s1 else []
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
            rest = (length - real, *radar[0].shape[1:]) if radar else ()
            radar = [np.concatenate([r, np.zeros(rest, r.dtype)]) for r in radar]
        aug = self.augment
        if aug["flips"]:
            k, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
            s2, clear, gap, cloud, *radar = rotate_flip([s2, clear, gap, cloud, *radar], k, flip)
        # Radiometry and dates drawn from their own stream: the crops and gaps stay the same.
        arng = np.random.default_rng([self.seed, index, 1])
        jitter = None
        if aug["gain"] > 0 or aug["offset"] > 0:
            gain = 1.0 + arng.normal(0.0, aug["gain"], (length, 1))
            offset = arng.normal(0.0, aug["offset"], (length, s2.shape[1]))
            jitter = (gain.astype(np.float32), offset.astype(np.float32))
        if aug["doy_shift"] > 0:
            shift = int(arng.integers(-aug["doy_shift"], aug["doy_shift"] + 1))
            doy = np.where(pad, 0, (doy - 1 + shift) % 365 + 1)
        return sample_dict(
            s2, clear, gap, doy, self.mean, self.std, self.meta.scale, cloud=cloud, pad=pad,
            jitter=jitter, s1=radar[0] if radar else None,
        )  # fmt: skip

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
        if self.masking == "utilise":
            return _utilise_masks(gap, rng)
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
            mask = self.reader.read_mask(donor, slice(None), slice(y0, y0 + c), slice(x0, x0 + c))
        else:  # tile a small donor mask up to the crop
            mask = self.reader.read_mask(donor, slice(None), slice(None), slice(None))
            reps = (1, -(-c // mask.shape[1]), -(-c // mask.shape[2]))
            mask = np.tile(mask, reps)[:, :c, :c]
        return cloudy(mask[order])


def _utilise_masks(donor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """U-TILISE's masking: masks on a random number of dates up to half of them (at least
    one), never the first; each from a donor date with at least UTILISE_MIN_COVER cloud (any
    donor date when none has that much)."""
    real = donor.shape[0]
    gap = np.zeros_like(donor)
    if real < 2:
        return gap
    cover = donor.reshape(real, -1).mean(axis=1)
    cloudy_dates = np.flatnonzero(cover >= UTILISE_MIN_COVER)
    pool = cloudy_dates if cloudy_dates.size else np.arange(real)
    k = int(rng.integers(1, max(1, real // 2) + 1))
    dates = 1 + rng.permutation(real - 1)[:k]
    gap[dates] = donor[rng.choice(pool, size=len(dates))]
    return gap


class EvalTiles(Dataset):
    """Whole tiles of a split with their fixed evaluation gaps, one item per tile.

    Input availability is ``clear & ~gap``; ``hidden`` is ``clear & gap`` (all False for a
    tile without a ``gap`` dataset).  Items add ``tile`` (str) and ``file`` (int) to the
    tensors of :mod:`cloudfree.train.samples`; use ``batch_size=1`` or iterate directly, since tiles
    may differ in size and date count.  With ``with_s1`` items hold the tile's Sentinel-1 input
    (InputDataError naming the file when a tile has none, :func:`check_s1_data`).
    """

    def __init__(
        self,
        paths: Paths,
        norm: tuple[Sequence[float], Sequence[float]],
        split: str = "val",
        with_s1: bool = False,
    ) -> None:
        self.meta = read_meta(paths)
        if with_s1:
            check_s1_data(paths)
        self.s1 = with_s1
        self.tiles = [t for t in self.meta.tiles if t.split == split]
        self.mean, self.std = norm_arrays(norm, len(self.meta.bands))
        self.reader = PackedReader(paths, cache_bytes=0)

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, index: int) -> dict[str, Any]:
        ref = self.tiles[index]
        series = read_tile(self.reader.h5(ref.file), ref.tile)
        gap = series.gap if series.gap is not None else np.zeros(series.mask.shape, dtype=bool)
        item: dict[str, Any] = sample_dict(
            series.s2,
            series.clear,
            gap,
            series.doy,
            self.mean,
            self.std,
            self.meta.scale,
            cloud=cloudy(series.mask),
            s1=self._s1(ref, series.s1),
        )
        item["tile"] = ref.tile
        item["file"] = ref.file
        return item

    def _s1(self, ref: TileRef, db: np.ndarray | None) -> np.ndarray | None:
        """The scaled S1 input of a tile (``with_s1``), else None."""
        if not self.s1:
            return None
        if db is None:
            raise InputDataError(f"tile {ref.tile} of {self.reader.paths[ref.file]} has no s1")
        return scale_s1(db)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def close(self) -> None:
        self.reader.close()
