"""Rule pack_hdf5: a region's GeoTIFF series written as one chunked, compressed HDF5 file.

Reads the region's manifest, its tiles (:mod:`cloudfree.pack.load`) and, when given, the date
classes of the cloud statistics (:mod:`cloudfree.pack.dates`); writes the file in the format
of :mod:`cloudfree.packed`, atomically, with the evaluation gaps of the val/test tiles
(:mod:`cloudfree.pack.gaps`) and the normalisation sums of the train tiles.  A progress
line (``<file>: tiles packed: i of N``, elapsed and ETA) is logged after the first tile, at
least every 30 s and after the last (:class:`cloudfree.progress.Progress`).

Every pixel dataset (``s2``, ``mask``, ``gap``, ``probability``, ``s1``) carries HDF5's
Fletcher-32 checksum of each compressed chunk: a chunk damaged on disk fails to read
(h5py raises OSError, the readers of :mod:`cloudfree.packed` an InputDataError naming the
file and tile) instead of decompressing to wrong pixel values.  Files written without
checksums read as before, unchecked.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np
import pandas as pd

from cloudfree.bands import MASK_CLASSES, MASK_NODATA, NODATA, REFLECTANCE_SCALE
from cloudfree.config import schema
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.h5cache import bound_metadata_cache
from cloudfree.io import atomic_path
from cloudfree.pack.dates import (
    class_lookup,
    classes_from_clear_share,
    classes_from_table,
    clear_share_rule,
    read_date_stats,
    without_holdout,
)
from cloudfree.pack.gaps import TrainOverlap, cloud_covers, iter_evaluation_gaps
from cloudfree.pack.load import image_bands, load_tile
from cloudfree.packed import (
    DATE_CLASSES,
    FORMAT_VERSION,
    TileSeries,
    day_of_year,
    norm_from_sums,
    norm_sums,
    validate_layout,
)
from cloudfree.progress import Progress

log = logging.getLogger(__name__)

CHUNK_SIDE = 64  # date-wise chunks of 64 x 64 px: a 32 px training crop reads <= 4 a date


def compression_filter(compression: str, level: int) -> dict[str, Any]:
    """The h5py dataset keywords of a ``pack.compression`` at ``level``."""
    if compression in ("blosc_lz4", "blosc_lz4hc"):
        cname = compression.removeprefix("blosc_")
        return dict(hdf5plugin.Blosc(cname=cname, clevel=level, shuffle=hdf5plugin.Blosc.SHUFFLE))
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": level, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    allowed = schema()["properties"]["pack"]["properties"]["compression"]["enum"]
    raise ConfigError(f"pack.compression {compression!r}: expected one of {', '.join(allowed)}")


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """One date and all bands per chunk, at most CHUNK_SIDE x CHUNK_SIDE pixels: a crop
    decompresses the few chunks it overlaps, not whole dates."""
    return (1, *shape[1:-2], min(shape[-2], CHUNK_SIDE), min(shape[-1], CHUNK_SIDE))


class StoredMasks(Mapping[str, h5py.Dataset]):
    """The ``mask`` dataset of each tile of an open file's ``tiles`` group, opened on use."""

    def __init__(self, root: h5py.Group) -> None:
        self.root = root

    def __getitem__(self, name: str) -> h5py.Dataset:
        return self.root[name]["mask"]

    def __iter__(self) -> Iterator[str]:
        return iter(self.root)

    def __len__(self) -> int:
        return len(self.root)


# (every tile's stored mask, every tile's per-date cloud cover) -> (tile, gap), one at a time
GapMaker = Callable[
    [Mapping[str, h5py.Dataset], Mapping[str, np.ndarray]], Iterable[tuple[str, np.ndarray]]
]


def write_pixels(
    group: h5py.Group, name: str, data: np.ndarray, comp: Mapping[str, Any]
) -> h5py.Dataset:
    """A pixel dataset in date-wise 64 px chunks (:func:`_chunks`), compressed with ``comp``
    (:func:`compression_filter`), each chunk checksummed (Fletcher-32, verified on read)."""
    chunks = _chunks(data.shape)
    return group.create_dataset(name, data=data, chunks=chunks, fletcher32=True, **comp)


def write_packed(
    dest: str | os.PathLike[str],
    tiles: Iterable[TileSeries],
    *,
    region: str,
    source: str,
    bands: Sequence[str],
    pack: Mapping[str, Any],
    date_class_source: str = "",
    norm_split: str = "train",
    gaps: GapMaker | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write tiles in the format of :mod:`cloudfree.packed`, atomically (nothing replaced on
    failure).

    ``pack`` is the resolved ``pack`` config section: its compression and level, and the
    ``clear_min``/``usable_min`` that classify the dates of a tile without date classes
    (:func:`~cloudfree.pack.dates.classes_from_clear_share`).  ``tiles`` may be a generator:
    one tile's pixels are in memory at a time, whatever the tile count.  ``gaps``, if given,
    makes the evaluation gaps of some tiles from every tile's cloud mask (read back one date
    at a time from the file being written) and cloud cover per date, one tile's gap at a
    time, each written as it comes.  ``progress``, if given, counts the tiles written (a
    line ``i of N`` with an ETA at least every 30 s, :class:`cloudfree.progress.Progress`).
    """
    comp = compression_filter(pack["compression"], pack["compression_level"])
    text = h5py.string_dtype()
    n, s1, s2 = 0, np.zeros(len(bands)), np.zeros(len(bands))
    covers: dict[str, np.ndarray] = {}  # (T,) floats per tile: all the gaps keep in memory
    with atomic_path(dest) as tmp:
        with h5py.File(tmp, "w") as h5:
            bound_metadata_cache(h5)
            root = h5.create_group("tiles")
            for tile in tiles:
                g = root.create_group(tile.tile)
                hh, ww = tile.s2.shape[2:]
                g.attrs.update(
                    split=tile.split,
                    crs=tile.crs.to_wkt(),
                    transform=list(tile.transform.to_gdal()),
                    width=ww,
                    height=hh,
                    nodata=tile.nodata,
                )
                pixels = {"s2": tile.s2, "mask": tile.mask, "gap": tile.gap}
                pixels.update(probability=tile.probability, s1=tile.s1)
                for name, arr in pixels.items():
                    if arr is not None:
                        write_pixels(g, name, arr, comp)
                g.create_dataset("dates", data=list(tile.dates), dtype=text)
                g.create_dataset("doy", data=day_of_year(list(tile.dates)))
                g.create_dataset("valid_fraction", data=tile.valid_fraction)
                if tile.date_class is None:
                    tile.date_class = classes_from_clear_share(
                        tile, clear_min=pack["clear_min"], usable_min=pack["usable_min"]
                    )
                g.create_dataset("date_class", data=np.asarray(tile.date_class, dtype=np.uint8))
                g.create_dataset("clear_dates", data=tile.dates_of("clear"), dtype=text)
                g.create_dataset("impaired_dates", data=tile.dates_of("impaired"), dtype=text)
                src = g.create_group("sources")
                for kind, files in tile.sources.items():
                    src.create_dataset(kind, data=list(files), dtype=text)
                if tile.split == norm_split:
                    tn, ts1, ts2 = norm_sums(tile.s2, tile.mask, tile.nodata, REFLECTANCE_SCALE)
                    n, s1, s2 = n + tn, s1 + ts1, s2 + ts2
                if gaps is not None:
                    covers[tile.tile] = cloud_covers(tile.mask)
                if progress is not None:
                    progress.step()
            if gaps is not None:
                for name, gap in gaps(StoredMasks(root), covers):
                    write_pixels(root[name], "gap", gap, comp)
            mean, std = norm_from_sums(n, s1, s2)
            h5.attrs.update(
                format_version=FORMAT_VERSION,
                region=region,
                source=source,
                bands=list(bands),
                scale=REFLECTANCE_SCALE,
                nodata=NODATA,
                mask_nodata=MASK_NODATA,
                mask_classes=json.dumps(MASK_CLASSES),
                date_classes=json.dumps(DATE_CLASSES),
                date_class_source=date_class_source,
                compression=pack["compression"],
                norm_split=norm_split,
                norm_count=n,
                norm_sum=s1,
                norm_sumsq=s2,
                norm_mean=mean,
                norm_std=std,
            )
        validate_layout(tmp, where=str(dest))
    return Path(dest)


def pack_region(
    manifest: pd.DataFrame,
    dest: str | os.PathLike[str],
    *,
    pack: Mapping[str, Any],
    evaluation: Mapping[str, Any],
    date_stats: pd.DataFrame | str | os.PathLike[str] | None = None,
    bands: Sequence[str] | None = None,
) -> Path:
    """Write ``dest`` from the manifest of one region (atomically, one tile at a time).

    ``pack`` and ``evaluation`` are the resolved config sections of those names.  Every tile
    must have the band count of the region's first tile (each keeps its own dates).
    Evaluation gaps of val/test tiles (``evaluation.seed``, ``evaluation.date_fraction``) leave
    out pixels a train tile covers too.  ``bands`` defaults to the band names of the first
    image (:func:`~cloudfree.pack.load.image_bands`).  Date classes come from ``date_stats``
    (the cloud_stats table, columns tile, date, class) or, without it, from the cloud masks
    (``pack.clear_min``/``pack.usable_min``).  Normalisation sums of the train tiles are
    stored for :func:`cloudfree.packed.compute_norm_stats`.  Train and val tiles leave out
    the dates of ``evaluation.holdout_period`` (:func:`~cloudfree.pack.dates.without_holdout`).
    """
    compression_filter(pack["compression"], pack["compression_level"])  # fail before reading
    manifest = without_holdout(manifest, evaluation["holdout_period"])
    region = str(manifest["region"].iloc[0])
    source = str(manifest["source"].iloc[0])
    if bands is None:
        first_row = manifest.sort_values(["tile", "date"]).iloc[0]
        bands = image_bands(
            first_row["image"], f"tile {first_row['tile']}, date {first_row['date']}"
        )
    stats = (
        read_date_stats(date_stats) if isinstance(date_stats, (str, os.PathLike)) else date_stats
    )
    classes = class_lookup(stats) if stats is not None else None
    where = stats.attrs.get("path", "date_stats") if stats is not None else ""
    splits = manifest.groupby("tile")["split"].first()
    progress = Progress(log, f"{dest}: tiles packed", len(splits))
    targets = sorted(str(t) for t, sp in splits.items() if sp != "train")

    def tiles() -> Iterator[TileSeries]:
        # Each tile keeps its own dates: SEN12MS-CR-TS ROIs of one region were acquired on
        # different days (the tiles of one grid, synthetic/folder/STAC, share theirs).
        first: tuple[str, np.dtype] | None = None
        for name, rows in manifest.groupby("tile", sort=True):
            rows = rows.sort_values("date")
            tile = load_tile(str(name), rows, bands)
            if first is None:
                first = (str(name), tile.s2.dtype)
            elif tile.s2.dtype != first[1]:
                raise InputDataError(
                    f"tile {name}: {tile.s2.dtype} pixels, tile {first[0]} has {first[1]}"
                )
            if classes is not None:  # else write_packed classifies from the masks
                tile.date_class = classes_from_table(classes, tile, where)
            yield tile

    def gaps(
        masks: Mapping[str, h5py.Dataset], covers: Mapping[str, np.ndarray]
    ) -> Iterator[tuple[str, np.ndarray]]:
        found = iter_evaluation_gaps(
            masks, covers, targets, seed=evaluation["seed"],
            date_fraction=evaluation["date_fraction"],
        )  # fmt: skip
        # Pixels a train tile covers too (overlapping tiles) are never scored: the model saw
        # their clear series in training.
        overlap = TrainOverlap(manifest)
        for name, gap in found:
            shared = overlap(name, gap.shape[1:])
            if shared is not None:
                gap &= ~shared[None]
            yield name, gap

    if stats is not None:
        how = f"cloud statistics {where}"
    else:
        how = clear_share_rule(pack["clear_min"], pack["usable_min"])
    return write_packed(
        dest,
        tiles(),
        region=region,
        source=source,
        bands=bands,
        pack=pack,
        date_class_source=how,
        gaps=gaps,
        progress=progress,
    )
