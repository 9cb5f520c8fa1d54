"""Pack a region's GeoTIFF series into one chunked, compressed HDF5 file.

Layout (``FORMAT_VERSION`` 3)::

    /                    attrs: format_version, region, source, bands, scale, nodata,
                                 mask_nodata, mask_classes (JSON), date_classes (JSON),
                                 date_class_source, compression,
                                 norm_split, norm_count, norm_sum, norm_sumsq (float64, per
                                 band, over the clear pixels of the norm_split tiles),
                                 norm_mean, norm_std
    /tiles/<tile>/       attrs: split, crs (WKT), transform (GDAL order, 6 floats),
                                 width, height, nodata
        s2     (T, C, H, W) int      the source's integer type (uint16 reflectance x scale,
                                     0 = nodata); one chunk per date
        mask   (T, H, W)    uint8    cloud classes (cloudfree.bands), 255 = nodata
        probability (T, H, W) float32  cloud probability, only when the manifest has one
                                     for every date (no stand-in is derived from the mask)
        s1     (T, 2, H, W) float32  Sentinel-1 VV/VH, only when the manifest has it
        dates  (T,)         str      ISO dates, ascending
        doy    (T,)         int16    day of year
        valid_fraction (T,) float32  share of pixels with data
        date_class (T,)     uint8    0 clear, 1 impaired, 2 unusable (see DATE_CLASSES)
        clear_dates, impaired_dates  str lists (unusable dates stay in the stack, flagged)
        sources/<kind> (T,) str      source file of each date (image, mask, probability, s1)
        gap    (T, H, W)    bool     evaluation gaps (val/test tiles only): pixels hidden
                                     from the model whose truth is known

Pixel datasets are compressed with Blosc-LZ4 and byte shuffle (``hdf5plugin``; any h5py with
``import hdf5plugin`` reads them), gzip or lzf, in date-wise chunks so a reader can fetch a
subset of dates.  ``read_tile`` returns a :class:`TileSeries`; everything downstream reads
through it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np
import pandas as pd
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError

from .bands import (
    CLEAR,
    MASK_CLASSES,
    MASK_NODATA,
    NODATA,
    REFLECTANCE_SCALE,
    S2_L1C_BANDS,
)
from .errors import ConfigError, InputDataError
from .io import atomic_path, read_raster, read_raster_named

FORMAT_VERSION = 3  # 3: evaluation gaps leave out pixels shared with train tiles
COMPRESSIONS = ("blosc_lz4hc", "blosc_lz4", "gzip", "lzf")
DATE_CLASSES = {"clear": 0, "impaired": 1, "unusable": 2}
MAX_CHUNK_SIDE = 512  # larger tiles get spatial chunks too (HDF5 caps a chunk at 4 GB)


@dataclass
class TileSeries:
    """One tile's time series with its geo metadata."""

    tile: str
    split: str
    s2: np.ndarray  # (T, C, H, W) integer
    mask: np.ndarray  # (T, H, W) uint8
    dates: list[str]
    doy: np.ndarray  # (T,) int16
    crs: CRS
    transform: Affine
    gap: np.ndarray | None = None  # (T, H, W) bool
    probability: np.ndarray | None = None  # (T, H, W) float32
    s1: np.ndarray | None = None  # (T, 2, H, W) float32
    date_class: np.ndarray | None = None  # (T,) uint8 codes of DATE_CLASSES
    sources: dict[str, list[str]] = field(default_factory=dict)
    nodata: int = NODATA

    @property
    def days(self) -> np.ndarray:
        """(T,) int days since the first date (for interpolation across year ends)."""
        d = pd.DatetimeIndex(pd.to_datetime(self.dates))
        return ((d - d[0]).days).to_numpy().astype(np.int64)

    @property
    def valid(self) -> np.ndarray:
        """(T, H, W) True where the image has data."""
        return (self.s2 != self.nodata).any(axis=1) & (self.mask != MASK_NODATA)

    @property
    def clear(self) -> np.ndarray:
        """(T, H, W) True where the pixel is observed and cloud- and shadow-free."""
        return self.valid & (self.mask == CLEAR)

    @property
    def valid_fraction(self) -> np.ndarray:
        """(T,) share of pixels with data."""
        return self.valid.mean(axis=(1, 2)).astype(np.float32)

    def dates_of(self, cls: str) -> list[str]:
        """Dates of one class (``clear``, ``impaired``, ``unusable``)."""
        if self.date_class is None:
            return []
        code = DATE_CLASSES[cls]
        return [d for d, c in zip(self.dates, self.date_class, strict=True) if c == code]

    def reflectance(self) -> np.ndarray:
        """(T, C, H, W) float32 reflectance in [0, 1]-ish; nodata pixels are NaN."""
        out = self.s2.astype(np.float32) / REFLECTANCE_SCALE
        out[np.broadcast_to(~self.valid[:, None], out.shape)] = np.nan
        return out


def day_of_year(dates: list[str]) -> np.ndarray:
    return pd.DatetimeIndex(pd.to_datetime(dates)).day_of_year.to_numpy().astype(np.int16)


def evaluation_gaps(
    masks: dict[str, np.ndarray], targets: list[str], *, seed: int, date_fraction: float
) -> dict[str, np.ndarray]:
    """Fixed evaluation gaps: real cloud masks of other tiles laid over the target tiles.

    For each target tile, a ``date_fraction`` share of its dates gets the cloud/shadow
    pixels of a randomly chosen (tile, date) of another tile.  Deterministic in ``seed``.
    """
    rng = np.random.default_rng(seed)
    names = sorted(masks)
    donors = [
        (name, t)
        for name in names
        for t in range(masks[name].shape[0])
        if 0.05 <= _cloudy(masks[name][t]).mean() <= 0.9
    ]
    gaps: dict[str, np.ndarray] = {}
    for target in sorted(targets):
        tmask = masks[target]
        gap = np.zeros(tmask.shape, dtype=bool)
        candidates = [d for d in donors if d[0] != target] or donors
        for t in range(tmask.shape[0]):
            if not candidates or rng.random() >= date_fraction:
                continue
            name, dt = candidates[rng.integers(len(candidates))]
            donor = _cloudy(masks[name][dt])
            if donor.shape != tmask.shape[1:]:
                donor = _fit(donor, tmask.shape[1:])
            gap[t] = donor
        gaps[target] = gap
    return gaps


def train_overlap(
    manifest: pd.DataFrame, shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, np.ndarray]:
    """For each val/test tile, its (H, W) pixels that a train tile of the same CRS covers,
    even partly (tiles cut with overlap, or moved back to end at the region's edge).

    Tiles without bounds in the manifest are left out.  The intersecting train tiles are
    found with one vectorised test per val/test tile (regions of thousands of tiles).
    """
    cols = ["tile", "split", "crs", "left", "bottom", "right", "top"]
    boxes = manifest[cols].drop_duplicates("tile")
    boxes = boxes[boxes[["left", "bottom", "right", "top"]].notna().all(axis=1)]
    train = boxes[boxes["split"] == "train"]
    out: dict[str, np.ndarray] = {}
    for crs, group in boxes[boxes["split"] != "train"].groupby("crs", sort=False):
        same = train[train["crs"] == crs]
        tl, tb, tr, tt = (same[c].to_numpy(float) for c in ("left", "bottom", "right", "top"))
        for b in group.itertuples():
            hits = (tl < b.right) & (tr > b.left) & (tb < b.top) & (tt > b.bottom)
            if not hits.any():
                continue
            h, w = shapes[str(b.tile)][:2]
            xres, yres = (b.right - b.left) / w, (b.top - b.bottom) / h
            shared = np.zeros((h, w), dtype=bool)
            boxes_hit = zip(tl[hits], tb[hits], tr[hits], tt[hits], strict=True)
            for left, bottom, right, top in boxes_hit:
                # every pixel the train tile touches, even partly (1e-6 px of slack)
                c0 = math.floor((max(left, b.left) - b.left) / xres + 1e-6)
                c1 = math.ceil((min(right, b.right) - b.left) / xres - 1e-6)
                r0 = math.floor((b.top - min(top, b.top)) / yres + 1e-6)
                r1 = math.ceil((b.top - max(bottom, b.bottom)) / yres - 1e-6)
                shared[max(r0, 0) : r1, max(c0, 0) : c1] = True
            out[str(b.tile)] = shared
    return out


def _cloudy(mask: np.ndarray) -> np.ndarray:
    return (mask != CLEAR) & (mask != MASK_NODATA)


def _fit(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Tile or crop a donor mask to another tile's shape."""
    reps = (-(-shape[0] // mask.shape[0]), -(-shape[1] // mask.shape[1]))
    return np.tile(mask, reps)[: shape[0], : shape[1]]


def classify_dates(
    tile: TileSeries, *, clear_min: float = 0.9, usable_min: float = 0.1
) -> np.ndarray:
    """(T,) date classes from the cloud masks, when no cloud statistics table is given.

    ``clear``: at least ``clear_min`` of the valid pixels are clear; ``unusable``: no valid
    pixel or less than ``usable_min`` of them clear; ``impaired``: the rest.
    """
    valid = tile.valid.sum(axis=(1, 2))
    clear = tile.clear.sum(axis=(1, 2))
    frac = np.where(valid > 0, clear / np.maximum(valid, 1), 0.0)
    out = np.full(len(frac), DATE_CLASSES["impaired"], dtype=np.uint8)
    out[frac >= clear_min] = DATE_CLASSES["clear"]
    out[(valid == 0) | (frac < usable_min)] = DATE_CLASSES["unusable"]
    return out


def read_date_stats(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The per tile and date table of rule cloud_stats (columns tile, date, class, ...)."""
    try:
        df = pd.read_csv(path, dtype={"tile": str, "date": str, "class": str})
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputDataError(f"cannot read cloud statistics {path}: {exc}") from exc
    missing = [c for c in ("tile", "date", "class") if c not in df.columns]
    if missing:
        raise InputDataError(f"{path}: missing columns {missing}")
    bad = sorted(set(df["class"]) - set(DATE_CLASSES))
    if bad:
        raise InputDataError(f"{path}: unknown date classes {bad}; expected {list(DATE_CLASSES)}")
    df.attrs["path"] = str(path)
    return df


def _optional_paths(rows: pd.DataFrame, column: str) -> list[str] | None:
    """The per-date paths of an optional manifest column: all set, or None when all empty."""
    if column not in rows.columns:
        return None
    vals = ["" if pd.isna(v) else str(v).strip() for v in rows[column]]
    if not any(vals):
        return None
    if not all(vals):
        row = rows.iloc[next(i for i, v in enumerate(vals) if not v)]
        raise InputDataError(
            f"manifest: tile {row.tile}, date {row.date} has no {column} file while other "
            f"dates of the region have one; give one for every date or for none"
        )
    return vals


def image_bands(path: str | os.PathLike[str], where: str = "") -> tuple[str, ...]:
    """Band names of a GeoTIFF from its band descriptions.

    A 13-band file without descriptions is taken as :data:`S2_L1C_BANDS`; any other file must
    name every band (``InputDataError`` naming the file otherwise).
    """
    at = f" ({where})" if where else ""
    try:
        with rasterio.open(path) as src:
            count, descriptions = src.count, src.descriptions
    except (RasterioError, OSError) as exc:
        raise InputDataError(f"cannot read raster {path}{at}: {exc}") from exc
    return band_names(path, count, descriptions, where)


def band_names(
    path: str | os.PathLike[str], count: int, descriptions: Sequence[str | None], where: str = ""
) -> tuple[str, ...]:
    """Band names from a raster's ``descriptions`` (see :func:`image_bands`)."""
    at = f" ({where})" if where else ""
    names = tuple(str(d).strip() if d else "" for d in descriptions)
    if all(names):
        if len(set(names)) != len(names):
            raise InputDataError(f"{path}{at}: band descriptions {names} are not unique")
        return names
    if not any(names) and count == len(S2_L1C_BANDS):
        return S2_L1C_BANDS
    raise InputDataError(
        f"{path}{at}: {count} bands but band descriptions {names}; a file that is not the "
        f"{len(S2_L1C_BANDS)} Sentinel-2 L1C bands must name every band in its descriptions"
    )


def load_series(
    rows: pd.DataFrame, bands: Sequence[str] = S2_L1C_BANDS
) -> tuple[np.ndarray, np.ndarray]:
    """Read a tile's images and masks listed in manifest rows (sorted by date)."""
    images, masks = [], []
    first_profile = None
    for row in rows.itertuples():
        img, prof, descriptions = read_raster_named(row.image)
        msk, mprof = read_raster(row.mask)
        where = f"tile {row.tile}, date {row.date}"
        if img.shape[0] != len(bands):
            raise InputDataError(
                f"{row.image} ({where}): {img.shape[0]} bands, expected {len(bands)} "
                f"({', '.join(bands)})"
            )
        names = band_names(row.image, img.shape[0], descriptions, where)
        if names != tuple(bands):
            raise InputDataError(
                f"{row.image} ({where}): bands {', '.join(names)}; the region's are "
                f"{', '.join(bands)} (other bands or another order)"
            )
        if img.dtype.kind not in "ui":
            raise InputDataError(f"{row.image} ({where}): {img.dtype} pixels, expected integers")
        if msk.shape[1:] != img.shape[1:] or mprof["transform"] != prof["transform"]:
            raise InputDataError(f"{row.mask} ({where}): cloud mask is not on the image grid")
        if first_profile is None:
            first_profile = prof
        elif prof["transform"] != first_profile["transform"] or prof["crs"] != first_profile["crs"]:
            raise InputDataError(f"{row.image} ({where}): grid differs from the tile's first date")
        elif img.dtype != images[0].dtype:
            raise InputDataError(
                f"{row.image} ({where}): {img.dtype} pixels, the tile's first date has "
                f"{images[0].dtype}"
            )
        images.append(img)
        masks.append(msk[0].astype(np.uint8, copy=False))
    return np.stack(images), np.stack(masks)


def _load_extra(rows: pd.DataFrame, paths: list[str], kind: str, shape: tuple[int, ...]):
    out = []
    for row, path in zip(rows.itertuples(), paths, strict=True):
        arr, _ = read_raster(path)
        if arr.shape != shape:
            raise InputDataError(
                f"{path} (tile {row.tile}, date {row.date}): {kind} of shape {arr.shape}, "
                f"expected {shape}"
            )
        out.append(arr.astype(np.float32, copy=False))
    return np.stack(out)


def _compression(compression: str, level: int) -> dict[str, Any]:
    if compression in ("blosc_lz4", "blosc_lz4hc"):
        cname = compression.removeprefix("blosc_")
        return dict(hdf5plugin.Blosc(cname=cname, clevel=level, shuffle=hdf5plugin.Blosc.SHUFFLE))
    if compression == "gzip":
        return {"compression": "gzip", "compression_opts": level, "shuffle": True}
    if compression == "lzf":
        return {"compression": "lzf", "shuffle": True}
    raise ConfigError(f"pack.compression {compression!r}: expected one of {COMPRESSIONS}")


def _chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """One date per chunk; all bands; the whole tile unless it is larger than MAX_CHUNK_SIDE."""
    return (1, *shape[1:-2], min(shape[-2], MAX_CHUNK_SIDE), min(shape[-1], MAX_CHUNK_SIDE))


def norm_sums(tiles: Sequence[TileSeries]) -> tuple[int, np.ndarray, np.ndarray]:
    """Pixel count, per-band sum and sum of squares of clear reflectance (DN / scale)."""
    n, s1, s2 = 0, None, None
    for tile in tiles:
        for t in range(tile.s2.shape[0]):
            img = tile.s2[t]
            clear = tile.clear[t]
            vals = img[:, clear].astype(np.float64) / REFLECTANCE_SCALE
            if s1 is None:
                s1 = np.zeros(img.shape[0])
                s2 = np.zeros(img.shape[0])
            n += vals.shape[1]
            s1 += vals.sum(axis=1)
            s2 += (vals**2).sum(axis=1)
    c = tiles[0].s2.shape[1] if tiles else 0
    return n, (s1 if s1 is not None else np.zeros(c)), (s2 if s2 is not None else np.zeros(c))


def norm_from_sums(n: int, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = s1 / max(n, 1)
    std = np.sqrt(np.maximum(s2 / max(n, 1) - mean**2, 0.0))
    return mean, np.maximum(std, 1e-4)


def write_packed(
    dest: str | os.PathLike[str],
    tiles: Iterable[TileSeries],
    *,
    region: str,
    source: str,
    bands: Sequence[str] = S2_L1C_BANDS,
    compression: str = "blosc_lz4hc",
    compression_level: int = 4,
    date_class_source: str = "",
    norm_split: str = "train",
    gaps: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
) -> Path:
    """Write tiles in the layout of this module, atomically (nothing replaced on failure).

    ``tiles`` may be a generator: one tile's pixels are in memory at a time.  ``gaps``, if
    given, maps every tile's cloud mask to evaluation gaps of some tiles, written last.
    """
    comp = _compression(compression, compression_level)
    text = h5py.string_dtype()
    n, s1, s2 = 0, np.zeros(len(bands)), np.zeros(len(bands))
    masks: dict[str, np.ndarray] = {}
    with atomic_path(dest) as tmp:
        with h5py.File(tmp, "w") as h5:
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
                        g.create_dataset(name, data=arr, chunks=_chunks(arr.shape), **comp)
                g.create_dataset("dates", data=list(tile.dates), dtype=text)
                g.create_dataset("doy", data=day_of_year(list(tile.dates)))
                g.create_dataset("valid_fraction", data=tile.valid_fraction)
                if tile.date_class is None:
                    tile.date_class = classify_dates(tile)
                g.create_dataset("date_class", data=np.asarray(tile.date_class, dtype=np.uint8))
                g.create_dataset("clear_dates", data=tile.dates_of("clear"), dtype=text)
                g.create_dataset("impaired_dates", data=tile.dates_of("impaired"), dtype=text)
                src = g.create_group("sources")
                for kind, files in tile.sources.items():
                    src.create_dataset(kind, data=list(files), dtype=text)
                if tile.split == norm_split:
                    tn, ts1, ts2 = norm_sums([tile])
                    n, s1, s2 = n + tn, s1 + ts1, s2 + ts2
                if gaps is not None:
                    masks[tile.tile] = tile.mask
            for name, gap in (gaps(masks) if gaps is not None else {}).items():
                root[name].create_dataset("gap", data=gap, chunks=_chunks(gap.shape), **comp)
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
                compression=compression,
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
    compression: str = "blosc_lz4hc",
    compression_level: int = 4,
    eval_seed: int = 0,
    eval_date_fraction: float = 0.5,
    date_stats: pd.DataFrame | str | os.PathLike[str] | None = None,
    bands: Sequence[str] | None = None,
    clear_min: float = 0.9,
    usable_min: float = 0.1,
) -> Path:
    """Write ``dest`` from the manifest of one region (atomically, one tile at a time).

    Every tile must have the band count of the region's first tile (each keeps its own
    dates).  Evaluation gaps of val/test tiles leave out pixels a train tile covers too.  ``bands``
    defaults to the band names of the first image (:func:`image_bands`).  Date classes
    come from ``date_stats`` (the cloud_stats table, columns tile, date, class) or, without
    it, from the cloud masks (:func:`classify_dates` with ``clear_min``/``usable_min``).
    Normalisation sums of the train tiles are stored for :func:`cloudfree.data.compute_norm_stats`.
    """
    if compression not in COMPRESSIONS:
        raise ConfigError(f"pack.compression {compression!r}: expected one of {COMPRESSIONS}")
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
    classes = _class_lookup(stats) if stats is not None else None
    where = stats.attrs.get("path", "date_stats") if stats is not None else ""
    splits = manifest.groupby("tile")["split"].first()
    targets = sorted(str(t) for t, sp in splits.items() if sp != "train")

    def tiles() -> Iterator[TileSeries]:
        # Each tile keeps its own dates: SEN12MS-CR-TS ROIs of one region were acquired on
        # different days (the tiles of one grid, synthetic/folder/STAC, share theirs).
        first: tuple[str, np.dtype] | None = None
        for name, rows in manifest.groupby("tile", sort=True):
            rows = rows.sort_values("date")
            tile = _load_tile(str(name), rows, bands)
            if first is None:
                first = (str(name), tile.s2.dtype)
            elif tile.s2.dtype != first[1]:
                raise InputDataError(
                    f"tile {name}: {tile.s2.dtype} pixels, tile {first[0]} has {first[1]}"
                )
            if classes is not None:
                tile.date_class = _classes_of(classes, tile, where)
            else:
                tile.date_class = classify_dates(tile, clear_min=clear_min, usable_min=usable_min)
            yield tile

    def gaps(masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        found = evaluation_gaps(masks, targets, seed=eval_seed, date_fraction=eval_date_fraction)
        # Pixels a train tile covers too (overlapping tiles) are never scored: the model saw
        # their clear series in training.
        shared = train_overlap(manifest, {n: m.shape[1:] for n, m in masks.items()})
        for name, gap in found.items():
            if name in shared:
                gap &= ~shared[name][None]
        return found

    if stats is not None:
        how = f"cloud statistics {where}"
    else:
        how = (
            f"cloud masks: clear if >= {clear_min} of the valid pixels are clear, "
            f"unusable if < {usable_min}"
        )
    return write_packed(
        dest,
        tiles(),
        region=region,
        source=source,
        bands=bands,
        compression=compression,
        compression_level=compression_level,
        date_class_source=how,
        gaps=gaps,
    )


def _load_tile(name: str, rows: pd.DataFrame, bands: Sequence[str]) -> TileSeries:
    """One tile's series, optional layers and geo reference from its manifest rows."""
    s2, mask = load_series(rows, bands)
    dates = rows["date"].astype(str).tolist()
    _, prof = read_raster(rows.iloc[0].image)
    sources = {"image": rows["image"].astype(str).tolist()}
    sources["mask"] = rows["mask"].astype(str).tolist()
    hh, ww = s2.shape[2:]
    prob = s1 = None
    prob_paths = _optional_paths(rows, "probability")
    if prob_paths:
        sources["probability"] = prob_paths
        prob = _load_extra(rows, prob_paths, "cloud probability", (1, hh, ww))[:, 0]
    s1_paths = _optional_paths(rows, "s1")
    if s1_paths:
        sources["s1"] = s1_paths
        s1 = _load_extra(rows, s1_paths, "Sentinel-1", (2, hh, ww))
    nodata = prof.get("nodata")
    return TileSeries(
        tile=name,
        split=str(rows["split"].iloc[0]),
        s2=s2,
        mask=mask,
        dates=dates,
        doy=day_of_year(dates),
        crs=CRS.from_user_input(prof["crs"]),
        transform=prof["transform"],
        probability=prob,
        s1=s1,
        sources=sources,
        nodata=NODATA if nodata is None else int(nodata),
    )


def _class_lookup(stats: pd.DataFrame) -> dict[tuple[str, str], int]:
    return {
        (str(t), str(d)): DATE_CLASSES[str(c)]
        for t, d, c in zip(stats["tile"], stats["date"], stats["class"], strict=True)
    }


def _classes_of(lookup: dict[tuple[str, str], int], tile: TileSeries, where: str) -> np.ndarray:
    out = []
    for date in tile.dates:
        if (tile.tile, date) not in lookup:
            raise InputDataError(f"{where}: no row for tile {tile.tile}, date {date}")
        out.append(lookup[(tile.tile, date)])
    return np.asarray(out, dtype=np.uint8)


def _decode(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_tile(h5: h5py.File, tile: str) -> TileSeries:
    """Read one tile of an open packed file."""
    try:
        g = h5["tiles"][tile]
    except KeyError:
        raise InputDataError(f"{h5.filename}: no tile {tile!r}") from None
    try:
        return TileSeries(
            tile=tile,
            split=str(g.attrs["split"]),
            s2=g["s2"][()],
            mask=g["mask"][()],
            dates=_decode(g["dates"][()]),
            doy=g["doy"][()],
            crs=CRS.from_wkt(g.attrs["crs"]),
            transform=Affine.from_gdal(*g.attrs["transform"]),
            gap=g["gap"][()] if "gap" in g else None,
            probability=g["probability"][()] if "probability" in g else None,
            s1=g["s1"][()] if "s1" in g else None,
            date_class=g["date_class"][()],
            sources={k: _decode(v[()]) for k, v in g["sources"].items()},
            nodata=int(g.attrs["nodata"]),
        )
    except (OSError, KeyError) as exc:
        raise InputDataError(
            f"{h5.filename}: tile {tile} is unreadable or incomplete: {exc}"
        ) from exc


def tile_names(h5: h5py.File, split: str | None = None) -> list[str]:
    """Tiles of a packed file, optionally only those of one split."""
    names = sorted(h5["tiles"])
    if split is None:
        return names
    return [n for n in names if h5["tiles"][n].attrs["split"] == split]


def open_packed(path: str | os.PathLike[str]) -> h5py.File:
    """Open a packed file for reading, checking that it is one and its format version."""
    if not Path(path).is_file():
        raise InputDataError(f"packed file {path} does not exist")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise InputDataError(
            f"cannot open packed file {path} (truncated, or not HDF5): {exc}; pack it again"
        ) from exc
    version = h5.attrs.get("format_version")
    if version is None or "tiles" not in h5:
        h5.close()
        raise InputDataError(
            f"{path} is an HDF5 file but not a cloudfree packed file (no format_version "
            "attribute or /tiles group)"
        )
    if int(version) != FORMAT_VERSION:
        h5.close()
        age = "older" if int(version) < FORMAT_VERSION else "newer"
        raise InputDataError(
            f"{path}: format_version {int(version)} is {age} than this cloudfree's "
            f"{FORMAT_VERSION}; pack it again (rule pack_hdf5 or cloudfree-pack)"
        )
    return h5


def iter_tiles(path: str | os.PathLike[str], split: str | None = None) -> Iterator[TileSeries]:
    with open_packed(path) as h5:
        for name in tile_names(h5, split):
            yield read_tile(h5, name)


def stored_norm(h5: h5py.File, split: str = "train") -> tuple[int, np.ndarray, np.ndarray] | None:
    """The normalisation sums stored at packing time for ``split``, or None."""
    a = h5.attrs
    if a.get("norm_split") != split or "norm_sum" not in a:
        return None
    return int(a["norm_count"]), np.asarray(a["norm_sum"]), np.asarray(a["norm_sumsq"])


REQUIRED = ("s2", "mask", "dates", "doy", "valid_fraction", "date_class", "sources")


def validate_layout(path: str | os.PathLike[str], where: str | None = None) -> None:
    """Check that every tile has its datasets with consistent shapes (reads every chunk)."""
    where = where or str(path)
    with open_packed(path) as h5:
        bands = len(h5.attrs["bands"])
        for name in tile_names(h5):
            g = h5["tiles"][name]
            missing = [k for k in REQUIRED if k not in g]
            if missing:
                raise InputDataError(f"{where}: tile {name} lacks {missing}")
            t, c, hh, ww = g["s2"].shape
            expect = {"mask": (t, hh, ww), "gap": (t, hh, ww), "probability": (t, hh, ww)}
            expect.update(s1=(t, 2, hh, ww), dates=(t,), doy=(t,), date_class=(t,))
            for key, shape in expect.items():
                if key in g and g[key].shape != shape:
                    raise InputDataError(
                        f"{where}: tile {name} {key} has shape {g[key].shape}, expected {shape}"
                    )
            if c != bands:
                raise InputDataError(f"{where}: tile {name} has {c} bands, the file {bands}")
            try:
                for i in range(t):  # decompress every chunk: a damaged file fails here
                    g["s2"][i]
            except OSError as exc:
                raise InputDataError(f"{where}: tile {name} date {i} unreadable: {exc}") from exc


def validate(path: str | os.PathLike[str], manifest: pd.DataFrame) -> None:
    """Check a packed file against its manifest: tiles, splits, dates and shapes.

    Raises :class:`InputDataError` listing every difference.
    """
    validate_layout(path)
    problems: list[str] = []
    with open_packed(path) as h5:
        region = str(manifest["region"].iloc[0])
        if str(h5.attrs["region"]) != region:
            problems.append(f"region {h5.attrs['region']!r}, manifest {region!r}")
        have = set(tile_names(h5))
        want = {str(t) for t in manifest["tile"].unique()}
        if have - want:
            problems.append(f"tiles not in the manifest: {sorted(have - want)[:5]}")
        if want - have:
            problems.append(f"tiles missing: {sorted(want - have)[:5]}")
        nb = len(h5.attrs["bands"])
        for name, rows in manifest.groupby("tile", sort=True):
            name = str(name)
            if name not in have:
                continue
            g = h5["tiles"][name]
            rows = rows.sort_values("date")
            dates = _decode(g["dates"][()])
            if dates != rows["date"].astype(str).tolist():
                problems.append(f"tile {name}: dates {dates} differ from the manifest's")
            shape = (len(rows), nb, int(rows["height"].iloc[0]), int(rows["width"].iloc[0]))
            if g["s2"].shape != shape:
                problems.append(f"tile {name}: s2 shape {g['s2'].shape}, manifest {shape}")
            if str(g.attrs["split"]) != str(rows["split"].iloc[0]):
                problems.append(
                    f"tile {name}: split {g.attrs['split']}, manifest {rows['split'].iloc[0]}"
                )
            for kind in ("probability", "s1"):
                if (_optional_paths(rows, kind) is not None) != (kind in g):
                    problems.append(f"tile {name}: {kind} presence differs from the manifest")
    if problems:
        raise InputDataError(f"{path} does not match its manifest: " + "; ".join(problems[:10]))


def packed_bands(packed: h5py.File | str | os.PathLike[str]) -> tuple[str, ...]:
    """Band names of a packed file (an open file or its path)."""
    if not isinstance(packed, h5py.File):
        with open_packed(packed) as h5:
            return packed_bands(h5)
    return tuple(b.decode() if isinstance(b, bytes) else str(b) for b in packed.attrs["bands"])


def file_attrs(h5: h5py.File) -> Mapping[str, Any]:
    """Root attributes as plain Python values."""
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in h5.attrs.items()}
