"""The packed HDF5 format of a region's series, and its reader.

One file per region, written by :mod:`cloudfree.pack.writer`; read by training, inference
and the metrics through :func:`read_tile` (a :class:`TileSeries`) and :func:`read_meta`.

Layout (``FORMAT_VERSION`` 3)::

    /                    attrs: format_version, region, source, bands, scale, nodata,
                                 mask_nodata, mask_classes (JSON), date_classes (JSON),
                                 date_class_source, compression,
                                 norm_split, norm_count, norm_sum, norm_sumsq (float64, per
                                 band, over the clear pixels of the norm_split tiles),
                                 norm_mean, norm_std
    /tiles/<tile>/       attrs: split, crs (WKT), transform (GDAL order, 6 floats),
                                 width, height, nodata
        s2     (T, C, H, W) int      the source's integer type (uint16 reflectance x scale;
                                     the tile's nodata attribute, 0 unless the source says
                                     otherwise, marks nodata)
        mask   (T, H, W)    uint8    cloud classes (cloudfree.bands), 255 = nodata
        probability (T, H, W) float32  cloud probability, only when the manifest has one
                                     for every date (no stand-in is derived from the mask)
        s1     (T, 2, H, W) float32  Sentinel-1 VV/VH in dB, when the manifest gives the
                                     tile S1 on some date; NaN on dates (and pixels)
                                     without S1
        dates  (T,)         str      ISO dates, ascending
        doy    (T,)         int16    day of year
        valid_fraction (T,) float32  share of pixels with data
        date_class (T,)     uint8    0 clear, 1 impaired, 2 unusable (see DATE_CLASSES)
        clear_dates, impaired_dates  str lists (unusable dates stay in the stack, flagged)
        sources/<kind> (T,) str      source file of each date (image, mask, probability, s1)
        gap    (T, H, W)    bool     evaluation gaps (val/test tiles only): pixels hidden
                                     from the model whose truth is known

Tile names are safe names and dates calendar dates, strictly ascending
(:mod:`cloudfree.names`; both become output paths), and every dataset of a tile has the shape
its ``s2`` implies: the readers refuse any other file with an InputDataError naming it, the
tile and the dataset, as they do a file whose data fail to read (a failed checksum or
decompression: "... is corrupted or unreadable ...").

A pixel is clear where some band has data and the mask says clear
(:func:`cloudfree.bands.clear_pixels`); the ``norm_*`` sums are those of :func:`norm_sums`
over the ``norm_split`` tiles, in tile-name order.  Pixel datasets are compressed with
Blosc-LZ4 and byte shuffle (``hdf5plugin``; any h5py with ``import hdf5plugin`` reads them),
gzip or lzf, in date-wise chunks of at most ``64 x 64`` pixels (all bands), so a training
crop decompresses a few chunks per date and a reader can fetch a subset of dates.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import hdf5plugin  # noqa: F401  (registers the Blosc filter the pixel datasets use)
import numpy as np
import pandas as pd
from affine import Affine
from rasterio.crs import CRS

from cloudfree.bands import MASK_NODATA, NODATA, REFLECTANCE_SCALE, clear_pixels
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.h5cache import bound_metadata_cache
from cloudfree.names import check_date, check_name

Paths = Sequence[str | os.PathLike[str]]

FORMAT_VERSION = 3  # 3: evaluation gaps leave out pixels shared with train tiles

DATE_CLASSES = {"clear": 0, "impaired": 1, "unusable": 2}

# Datasets every tile has (the others are optional).
REQUIRED = ("s2", "mask", "dates", "doy", "valid_fraction", "date_class", "sources")
# Datasets of one value per date, and per-pixel ones beside s2 (T, C, H, W).
PER_DATE = ("dates", "doy", "valid_fraction", "date_class")
PER_PIXEL = ("mask", "gap", "probability")


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
        return clear_pixels(self.s2, self.mask, self.nodata)

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
    """(T,) int16 day of year of ISO dates."""
    return pd.DatetimeIndex(pd.to_datetime(dates)).day_of_year.to_numpy().astype(np.int16)


def decode_strings(values: Iterable[bytes | str]) -> list[str]:
    """The str of each value of an HDF5 string dataset or attribute (h5py gives bytes)."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def open_packed(path: str | os.PathLike[str]) -> h5py.File:
    """Open a packed file for reading, checking that it is one and its format version."""
    if not Path(path).is_file():
        raise InputDataError(f"packed file {path} does not exist")
    try:
        h5 = h5py.File(path, "r")
        bound_metadata_cache(h5)
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


@contextlib.contextmanager
def reading(h5: h5py.File, tile: str | None = None) -> Iterator[None]:
    """Turn h5py's errors of a damaged file (a failed checksum or decompression, a missing or
    misshapen object) into an InputDataError naming the file and tile."""
    try:
        yield
    except (OSError, KeyError, TypeError, ValueError) as exc:
        what = f"tile {tile} of {h5.filename}" if tile is not None else h5.filename
        raise InputDataError(f"{what} is corrupted or unreadable ({exc}); pack it again") from exc


def tile_names(h5: h5py.File, split: str | None = None) -> list[str]:
    """Tiles of a packed file, optionally only those of one split.

    Every name must be a safe name (:func:`cloudfree.names.check_name`): it becomes a folder
    of the outputs.
    """
    with reading(h5):
        names = sorted(h5["tiles"])
    for name in names:
        check_name(name, "tile", str(h5.filename))
    if split is None:
        return names
    out = []
    for name in names:
        with reading(h5, name):
            if str(h5["tiles"][name].attrs["split"]) == split:
                out.append(name)
    return out


def tile_dates(h5: h5py.File, tile: str) -> list[str]:
    """The dates of a tile: calendar dates (:func:`cloudfree.names.check_date`; each names
    output files), strictly ascending."""
    where = f"{h5.filename}: tile {tile}"
    with reading(h5, tile):
        dates = decode_strings(h5["tiles"][tile]["dates"][()])
    for date in dates:
        check_date(date, where)
    for earlier, later in itertools.pairwise(dates):
        if later <= earlier:
            raise InputDataError(
                f"{where}: dates not strictly ascending ({earlier!r} before {later!r})"
            )
    return dates


def check_tile_layout(g: h5py.Group, name: str, bands: int, where: str) -> tuple[int, ...]:
    """The (T, C, H, W) shape of a tile after checking that it has its datasets and that their
    shapes agree with its ``s2`` and the file's band count (metadata only, no pixel read).

    Raises InputDataError naming ``where`` (the file), the tile, the dataset and both shapes.
    """
    missing = [k for k in REQUIRED if k not in g]
    if missing:
        raise InputDataError(f"{where}: tile {name} lacks {missing}")
    if not isinstance(g["sources"], h5py.Group):
        raise InputDataError(f"{where}: tile {name} sources is not a group of datasets")
    keys = ["s2", "s1", *PER_PIXEL, *PER_DATE, *(f"sources/{k}" for k in g["sources"])]
    not_data = [k for k in keys if k in g and not isinstance(g[k], h5py.Dataset)]
    if not_data:
        raise InputDataError(f"{where}: tile {name} {not_data} are not datasets")
    shape = tuple(g["s2"].shape)
    if len(shape) != 4:
        raise InputDataError(
            f"{where}: tile {name} s2 has shape {shape}, expected (dates, {bands}, height, width)"
        )
    t, c, hh, ww = shape
    if c != bands:
        raise InputDataError(f"{where}: tile {name} has {c} bands, the file {bands}")
    expect = {key: (t, hh, ww) for key in PER_PIXEL}
    expect.update({key: (t,) for key in PER_DATE}, s1=(t, 2, hh, ww))
    expect.update({f"sources/{kind}": (t,) for kind in g["sources"]})
    for key, want in expect.items():
        if key in g and g[key].shape != want:
            raise InputDataError(
                f"{where}: tile {name} {key} has shape {g[key].shape}, expected {want} "
                f"(s2 has {shape})"
            )
    return shape


def packed_bands(packed: h5py.File | str | os.PathLike[str]) -> tuple[str, ...]:
    """Band names of a packed file (an open file or its path)."""
    if not isinstance(packed, h5py.File):
        with open_packed(packed) as h5:
            return packed_bands(h5)
    with reading(packed):
        return tuple(decode_strings(packed.attrs["bands"]))


def read_tile(h5: h5py.File, tile: str) -> TileSeries:
    """Read one tile of an open packed file.

    Refuses (InputDataError naming the file and tile) a tile whose name or dates are not
    safe (:func:`tile_dates`), whose datasets disagree in shape (:func:`check_tile_layout`)
    or whose data cannot be read (a failed checksum, a damaged chunk).
    """
    check_name(tile, "tile", str(h5.filename))
    if tile not in h5["tiles"]:
        raise InputDataError(f"{h5.filename}: no tile {tile!r}")
    with reading(h5, tile):
        g = h5["tiles"][tile]
        check_tile_layout(g, tile, len(packed_bands(h5)), str(h5.filename))
        dates = tile_dates(h5, tile)
        return TileSeries(
            tile=tile,
            split=str(g.attrs["split"]),
            s2=g["s2"][()],
            mask=g["mask"][()],
            dates=dates,
            doy=g["doy"][()],
            crs=CRS.from_wkt(g.attrs["crs"]),
            transform=Affine.from_gdal(*g.attrs["transform"]),
            gap=g["gap"][()] if "gap" in g else None,
            probability=g["probability"][()] if "probability" in g else None,
            s1=g["s1"][()] if "s1" in g else None,
            date_class=g["date_class"][()],
            sources={k: decode_strings(v[()]) for k, v in g["sources"].items()},
            nodata=int(g.attrs["nodata"]),
        )


def iter_tiles(path: str | os.PathLike[str], split: str | None = None) -> Iterator[TileSeries]:
    """Every tile of a packed file (or of one split), one at a time."""
    with open_packed(path) as h5:
        for name in tile_names(h5, split):
            yield read_tile(h5, name)


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
            fbands = list(packed_bands(h5))
            with reading(h5):
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
                with reading(h5, name):
                    g = h5["tiles"][name]
                    t, _, hh, ww = check_tile_layout(g, name, len(fbands), str(path))
                    tiles.append(TileRef(i, name, str(g.attrs["split"]), t, hh, ww))
    assert bands is not None and scale is not None
    return PackedMeta(bands, scale, regions, tiles)


NormSums = tuple[int, np.ndarray, np.ndarray]


def norm_sums(
    s2: np.ndarray | h5py.Dataset, mask: np.ndarray | h5py.Dataset, nodata: int, scale: float
) -> NormSums:
    """Pixel count, per-band sum and sum of squares of reflectance (DN / ``scale``) over the
    clear pixels of one tile's (T, C, H, W) series, summed date by date.

    Reads one date at a time, so ``s2`` and ``mask`` may be datasets of an open file.  The
    writer stores these sums; :func:`compute_norm_stats` computes them the same way for files
    that lack them, so both give the same numbers.
    """
    c = s2.shape[1]
    n, s1, sq = 0, np.zeros(c), np.zeros(c)
    for t in range(s2.shape[0]):
        img = s2[t]  # (C, H, W)
        clear = clear_pixels(img[None], mask[t][None], nodata)[0]
        vals = img[:, clear].astype(np.float64) / scale  # (C, N)
        n += vals.shape[1]
        s1 += vals.sum(axis=1)
        sq += (vals**2).sum(axis=1)
    return n, s1, sq


def norm_from_sums(n: int, s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std (at least 1e-4) from the sums of :func:`norm_sums`."""
    mean = s1 / max(n, 1)
    std = np.sqrt(np.maximum(s2 / max(n, 1) - mean**2, 0.0))
    return mean, np.maximum(std, 1e-4)


def stored_norm(h5: h5py.File, split: str = "train") -> NormSums | None:
    """The normalisation sums stored at packing time for ``split``, or None."""
    a = h5.attrs
    if a.get("norm_split") != split or "norm_sum" not in a:
        return None
    return int(a["norm_count"]), np.asarray(a["norm_sum"]), np.asarray(a["norm_sumsq"])


def file_norm_sums(h5: h5py.File, split: str, scale: float) -> NormSums:
    """The sums of :func:`norm_sums` over the tiles of ``split``: stored, or from the pixels."""
    stored = stored_norm(h5, split)
    if stored is not None:
        return stored
    c = len(packed_bands(h5))
    n, s1, sq = 0, np.zeros(c), np.zeros(c)
    for name in tile_names(h5, split):
        with reading(h5, name):
            g = h5["tiles"][name]
            check_tile_layout(g, name, c, str(h5.filename))
            tn, ts1, tsq = norm_sums(g["s2"], g["mask"], int(g.attrs["nodata"]), scale)
        n, s1, sq = n + tn, s1 + ts1, sq + tsq
    return n, s1, sq


def compute_norm_stats(paths: Paths, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std of reflectance (DN / scale) over the clear pixels of a split.

    Pooled over the files, so several regions normalise as one; each file gives the sums
    stored at packing time when it has them for ``split``, else reads its pixels.
    """
    meta = read_meta(paths)
    sums = []
    for path in paths:
        with open_packed(path) as h5:
            sums.append(file_norm_sums(h5, split, meta.scale))
    n = sum(s[0] for s in sums)
    s1 = np.sum([s[1] for s in sums], axis=0)
    sq = np.sum([s[2] for s in sums], axis=0)
    if n == 0:
        raise InputDataError(f"no clear pixels in the {split!r} tiles of {list(map(str, paths))}")
    return norm_from_sums(n, s1, sq)


def validate_layout(path: str | os.PathLike[str], where: str | None = None) -> None:
    """Check that every tile has its datasets with consistent shapes, safe names and dates
    (:func:`check_tile_layout`, :func:`tile_dates`), and that its s2 decompresses (reads
    every chunk)."""
    where = where or str(path)
    with open_packed(path) as h5:
        bands = len(packed_bands(h5))
        for name in tile_names(h5):
            with reading(h5, name):
                g = h5["tiles"][name]
                t = check_tile_layout(g, name, bands, where)[0]
            tile_dates(h5, name)
            try:
                for i in range(t):  # decompress every chunk: a damaged file fails here
                    g["s2"][i]
            except OSError as exc:
                raise InputDataError(f"{where}: tile {name} date {i} unreadable: {exc}") from exc
