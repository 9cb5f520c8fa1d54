"""Pack a region's GeoTIFF series into one chunked, compressed HDF5 file.

Layout (``FORMAT_VERSION`` 1)::

    /                    attrs: format_version, region, source, bands, scale, nodata,
                                 mask_classes (JSON)
    /tiles/<tile>/       attrs: split, crs (WKT), transform (GDAL order, 6 floats),
                                 width, height
        s2     (T, C, H, W) uint16   reflectance x scale, 0 = nodata; one chunk per date
        mask   (T, H, W)    uint8    cloud classes (cloudfree.bands), 255 = nodata
        dates  (T,)         str      ISO dates, ascending
        doy    (T,)         int16    day of year
        files  (T,)         str      source GeoTIFF of each date
        gap    (T, H, W)    bool     evaluation gaps (val/test tiles only): pixels hidden
                                     from the model whose truth is known

``read_tile`` returns a :class:`TileSeries`; everything downstream reads through it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from affine import Affine
from rasterio.crs import CRS

from .bands import CLEAR, MASK_CLASSES, MASK_NODATA, NODATA, REFLECTANCE_SCALE, S2_L1C_BANDS
from .errors import InputDataError
from .io import atomic_path, read_raster

FORMAT_VERSION = 1


@dataclass
class TileSeries:
    """One tile's time series with its geo metadata."""

    tile: str
    split: str
    s2: np.ndarray  # (T, C, H, W) uint16
    mask: np.ndarray  # (T, H, W) uint8
    dates: list[str]
    doy: np.ndarray  # (T,) int16
    crs: CRS
    transform: Affine
    gap: np.ndarray | None = None  # (T, H, W) bool

    @property
    def days(self) -> np.ndarray:
        """(T,) int days since the first date (for interpolation across year ends)."""
        d = pd.DatetimeIndex(pd.to_datetime(self.dates))
        return ((d - d[0]).days).to_numpy().astype(np.int64)

    @property
    def valid(self) -> np.ndarray:
        """(T, H, W) True where the image has data."""
        return (self.s2 != NODATA).any(axis=1) & (self.mask != MASK_NODATA)

    @property
    def clear(self) -> np.ndarray:
        """(T, H, W) True where the pixel is observed and cloud- and shadow-free."""
        return self.valid & (self.mask == CLEAR)

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


def _cloudy(mask: np.ndarray) -> np.ndarray:
    return (mask != CLEAR) & (mask != MASK_NODATA)


def _fit(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Tile or crop a donor mask to another tile's shape."""
    reps = (-(-shape[0] // mask.shape[0]), -(-shape[1] // mask.shape[1]))
    return np.tile(mask, reps)[: shape[0], : shape[1]]


def load_series(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Read a tile's images and masks listed in manifest rows (sorted by date)."""
    images, masks = [], []
    first_profile = None
    for row in rows.itertuples():
        img, prof = read_raster(row.image)
        msk, mprof = read_raster(row.mask)
        where = f"tile {row.tile}, date {row.date}"
        if img.shape[0] != len(S2_L1C_BANDS):
            raise InputDataError(
                f"{row.image} ({where}): {img.shape[0]} bands, expected {len(S2_L1C_BANDS)}"
            )
        if msk.shape[1:] != img.shape[1:] or mprof["transform"] != prof["transform"]:
            raise InputDataError(f"{row.mask} ({where}): cloud mask is not on the image grid")
        if first_profile is None:
            first_profile = prof
        elif prof["transform"] != first_profile["transform"] or prof["crs"] != first_profile["crs"]:
            raise InputDataError(f"{row.image} ({where}): grid differs from the tile's first date")
        images.append(img.astype(np.uint16, copy=False))
        masks.append(msk[0].astype(np.uint8, copy=False))
    return np.stack(images), np.stack(masks)


def pack_region(
    manifest: pd.DataFrame,
    dest: str | os.PathLike[str],
    *,
    compression: str = "gzip",
    compression_level: int = 4,
    eval_seed: int = 0,
    eval_date_fraction: float = 0.5,
) -> Path:
    """Write ``dest`` from the manifest of one region (atomically)."""
    region = str(manifest["region"].iloc[0])
    source = str(manifest["source"].iloc[0])
    series: dict[str, tuple[pd.DataFrame, np.ndarray, np.ndarray]] = {}
    for tile, rows in manifest.groupby("tile", sort=True):
        rows = rows.sort_values("date")
        s2, mask = load_series(rows)
        series[str(tile)] = (rows, s2, mask)
    targets = [t for t, (rows, _, _) in series.items() if rows["split"].iloc[0] != "train"]
    gaps = evaluation_gaps(
        {t: m for t, (_, _, m) in series.items()},
        targets,
        seed=eval_seed,
        date_fraction=eval_date_fraction,
    )
    comp = {"compression": compression, "shuffle": True}
    if compression == "gzip":
        comp["compression_opts"] = compression_level
    with atomic_path(dest) as tmp, h5py.File(tmp, "w") as h5:
        h5.attrs.update(
            format_version=FORMAT_VERSION,
            region=region,
            source=source,
            bands=list(S2_L1C_BANDS),
            scale=REFLECTANCE_SCALE,
            nodata=NODATA,
            mask_classes=json.dumps(MASK_CLASSES),
        )
        root = h5.create_group("tiles")
        for tile, (rows, s2, mask) in series.items():
            first = rows.iloc[0]
            _, prof = read_raster(first.image)
            g = root.create_group(tile)
            g.attrs.update(
                split=str(first.split),
                crs=CRS.from_user_input(prof["crs"]).to_wkt(),
                transform=list(prof["transform"].to_gdal()),
                width=s2.shape[3],
                height=s2.shape[2],
            )
            g.create_dataset("s2", data=s2, chunks=(1, *s2.shape[1:]), **comp)
            g.create_dataset("mask", data=mask, chunks=(1, *mask.shape[1:]), **comp)
            text = h5py.string_dtype()
            g.create_dataset("dates", data=rows["date"].astype(str).tolist(), dtype=text)
            g.create_dataset("doy", data=day_of_year(rows["date"].tolist()))
            g.create_dataset("files", data=rows["image"].astype(str).tolist(), dtype=text)
            if tile in gaps:
                g.create_dataset("gap", data=gaps[tile], chunks=(1, *mask.shape[1:]), **comp)
    return Path(dest)


def _decode(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_tile(h5: h5py.File, tile: str) -> TileSeries:
    """Read one tile of an open packed file."""
    try:
        g = h5["tiles"][tile]
    except KeyError:
        raise InputDataError(f"{h5.filename}: no tile {tile!r}") from None
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
    )


def tile_names(h5: h5py.File, split: str | None = None) -> list[str]:
    """Tiles of a packed file, optionally only those of one split."""
    names = sorted(h5["tiles"])
    if split is None:
        return names
    return [n for n in names if h5["tiles"][n].attrs["split"] == split]


def open_packed(path: str | os.PathLike[str]) -> h5py.File:
    """Open a packed file for reading, checking its format version."""
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise InputDataError(f"cannot open packed file {path}: {exc}") from exc
    version = h5.attrs.get("format_version")
    if version != FORMAT_VERSION:
        h5.close()
        raise InputDataError(f"{path}: format_version {version}, expected {FORMAT_VERSION}")
    return h5


def iter_tiles(path: str | os.PathLike[str], split: str | None = None) -> Iterator[TileSeries]:
    with open_packed(path) as h5:
        for name in tile_names(h5, split):
            yield read_tile(h5, name)
