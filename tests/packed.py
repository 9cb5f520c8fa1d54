"""Small packed HDF5 files (the format of :mod:`cloudfree.packed`) made from arrays, no GeoTIFFs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from affine import Affine
from rasterio.crs import CRS
from scipy.ndimage import gaussian_filter

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.config import section
from cloudfree.pack.gaps import evaluation_gaps
from cloudfree.pack.writer import write_packed as pack_write
from cloudfree.packed import TileSeries


def _field(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    f = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return (f - f.mean()) / (f.std() + 1e-9)


def make_packed(
    path: str | Path,
    *,
    n_tiles: int = 9,
    size: int | tuple[int, int] = 64,
    dates: int | list[int] = 12,
    seed: int = 0,
    cloudiness: float = 0.4,
    region: str = "synth",
    bands: Sequence[str] = S2_L1C_BANDS,
    s1: bool = False,
) -> Path:
    """A packed file of smooth seasonal land-cover signals under cloud blobs.

    ``size`` and ``dates`` may be given per tile as lists.  Splits: two val and one test
    tile (one each below 5 tiles), the rest train; val/test tiles get evaluation gaps.
    With ``s1`` every tile also has ``s1`` (T, 2, H, W) VV/VH dB of the same land cover
    (cloud-free, a few values beyond [-25, 0] dB), NaN on about a quarter of the dates (at
    least one per tile, never all); the optical data are the same as without.
    """
    rng = np.random.default_rng(seed)
    radar_rng = np.random.default_rng([seed, 1])  # its own stream: the optical data unchanged
    radar: dict[str, np.ndarray] = {}
    nb = len(bands)
    sizes = size if isinstance(size, list) else [size] * n_tiles
    counts = dates if isinstance(dates, list) else [dates] * n_tiles
    n_eval = (2, 1) if n_tiles >= 5 else (1, 1)
    splits = ["train"] * (n_tiles - sum(n_eval)) + ["val"] * n_eval[0] + ["test"] * n_eval[1]
    classes = 4
    base = rng.uniform(0.03, 0.35, (classes, nb))
    amp = rng.uniform(-0.08, 0.15, (classes, nb))
    phase = rng.uniform(0, 365, classes)
    tiles = {}
    for i in range(n_tiles):
        hh, ww = (sizes[i], sizes[i]) if isinstance(sizes[i], int) else sizes[i]
        t = counts[i]
        doy = np.sort(rng.choice(np.arange(5, 360), t, replace=False)).astype(np.int16)
        cover = np.digitize(_field(rng, (hh, ww), 6), [-0.7, 0.0, 0.7])
        texture = _field(rng, (hh, ww), 1.5)
        season = np.sin(2 * np.pi * (doy[:, None] - phase[None]) / 365)  # (T, classes)
        refl = np.empty((t, nb, hh, ww))
        for d in range(t):
            refl[d] = (base[cover] + amp[cover] * season[d][cover][..., None]).transpose(2, 0, 1)
        refl += 0.02 * texture[None, None] * rng.uniform(0.5, 1.5, nb)[None, :, None, None]
        refl += rng.normal(0, 0.01, (t, nb, 1, 1)) + rng.normal(0, 0.004, refl.shape)
        mask = np.zeros((t, hh, ww), dtype=np.uint8)
        for d in range(t):
            if rng.random() < 0.3:
                continue
            p = min(0.95, rng.uniform(0.1, 2 * cloudiness))
            f = _field(rng, (hh, ww), 5)
            thr = np.quantile(f, 1 - p)
            cloud = f > thr
            thin = (f > thr - 0.4) & ~cloud
            shadow = np.roll(cloud, (4, 3), axis=(0, 1)) & ~cloud & ~thin
            mask[d][thin], mask[d][cloud], mask[d][shadow] = 2, 1, 3
            refl[d][:, cloud] = 0.45 + 0.1 * f[cloud]
            refl[d][:, thin] = 0.5 * refl[d][:, thin] + 0.2
            refl[d][:, shadow] *= 0.4
        s2 = np.clip(np.round(refl * 10000), 1, 65535).astype(np.uint16)
        tiles[f"t{i:02d}"] = (splits[i], s2, mask, doy)
        if s1:
            radar[f"t{i:02d}"] = _radar(radar_rng, cover, texture, season)
    targets = [k for k, v in tiles.items() if v[0] != "train"]
    gaps = evaluation_gaps(
        {k: v[2] for k, v in tiles.items()}, targets, seed=seed, date_fraction=0.5
    )
    return write_packed(
        path, {k: (*v, gaps.get(k)) for k, v in tiles.items()}, region=region, bands=bands,
        s1=radar or None,
    )  # fmt: skip


def _radar(
    rng: np.random.Generator, cover: np.ndarray, texture: np.ndarray, season: np.ndarray
) -> np.ndarray:
    """(T, 2, H, W) float32 VV/VH dB of a tile's land cover, NaN on some dates."""
    t, classes = season.shape
    level = rng.uniform(-18.0, -6.0, classes)  # VV backscatter of each land-cover class
    swing = rng.uniform(-3.0, 3.0, classes)
    vv = level[cover][None] + swing[cover][None] * season[:, cover] + 1.5 * texture[None]
    vv = vv + rng.normal(0.0, 0.8, vv.shape)  # speckle
    vh = vv - rng.uniform(5.0, 9.0) + rng.normal(0.0, 0.8, vv.shape)
    db = np.stack([vv, vh], axis=1).astype(np.float32)
    db[0, 0, 0, :2] = (3.0, -40.0)  # beyond the clip range
    missing = rng.random(t) < 0.25
    missing[0] = False
    missing[-1] = not missing[:-1].any() if t > 1 else False
    db[missing] = np.nan
    return db


def write_packed(
    path: str | Path,
    tiles: dict[str, tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]],
    *,
    region: str = "synth",
    compression: str = "blosc_lz4",
    date_class: dict[str, np.ndarray] | None = None,
    bands: Sequence[str] = S2_L1C_BANDS,
    s1: dict[str, np.ndarray] | None = None,
) -> Path:
    """Write ``{tile: (split, s2, mask, doy, gap or None)}`` with
    :func:`cloudfree.pack.writer.write_packed`.

    ``date_class`` overrides the classes derived from the masks for some tiles; ``s1``
    gives some tiles an ``s1`` dataset ((T, 2, H, W) VV/VH dB).
    """
    series = []
    for name, (split, s2, mask, doy, gap) in tiles.items():
        iso = [
            str((pd.Timestamp("2020-01-01") + pd.Timedelta(days=int(d) - 1)).date()) for d in doy
        ]
        series.append(
            TileSeries(
                tile=name,
                split=split,
                s2=s2,
                mask=mask,
                dates=iso,
                doy=np.asarray(doy, dtype=np.int16),
                crs=CRS.from_epsg(32632),
                transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5000000.0),
                gap=gap,
                date_class=(date_class or {}).get(name),
                s1=(s1 or {}).get(name),
                sources={"image": [f"{name}_{d}.tif" for d in iso]},
            )
        )
    pack = section("pack", {"compression": compression})
    return pack_write(path, series, region=region, source="synthetic-test", bands=bands, pack=pack)
