"""Inputs of the mosaic tests: per-tile rasters as the inference stage writes them, and the
mosaic settings as the workflow resolves them (the schema's defaults under a few values)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

from cloudfree.config import section
from cloudfree.io import geotiff_profile, write_raster

X0, Y0 = 400000.0, 5000000.0


@cache
def _resolved(values: str) -> dict[str, Any]:
    return section("mosaic", json.loads(values))


def mosaic_settings(**values: Any) -> dict[str, Any]:
    """The ``mosaic`` section with the schema's defaults under ``values``."""
    return dict(_resolved(json.dumps(values, sort_keys=True)))


def date_settings(**values: Any) -> dict[str, Any]:
    """Keyword arguments of ``mosaic_date`` from the resolved ``mosaic`` section."""
    s = mosaic_settings(**values)
    keys = ("rule", "crs", "resolution", "resampling", "compress", "block")
    return {k: s[k] for k in keys} | {"level": s["compress_level"], "fmt": s["format"]}


def region_settings(**values: Any) -> dict[str, Any]:
    """Keyword arguments of ``mosaic_region`` from the resolved ``mosaic`` section."""
    s = mosaic_settings(**values)
    keys = ("embedding_rule", "change_rule", "composite")
    return date_settings(**values) | {k: s[k] for k in keys}


def write_tile(
    root: Path, tile: str, x0: float, value: int, *, date: str = "2021-05-01",
    quality_cols: slice | None = None, shape=(16, 16), crs="EPSG:32632", transform=None,
) -> Path:  # fmt: skip
    """``<root>/<tile>/<date>.tif`` (bands B02 = ``value``, B03 = ``value + 1``) and its
    quality raster: observed, reconstructed in ``quality_cols``."""
    h, w = shape
    data = np.empty((2, h, w), dtype=np.uint16)
    data[0], data[1] = value, value + 1
    prof = geotiff_profile(
        crs=crs, transform=transform or Affine(10, 0, x0, 0, -10, Y0), width=w, height=h,
        count=2, dtype="uint16", nodata=0,
    )  # fmt: skip
    tags = {"DATE": date, "TILE": tile}
    path = write_raster(
        root / tile / f"{date}.tif", data, prof, band_names=["B02", "B03"], tags=tags
    )
    quality = np.ones((h, w), dtype=np.uint8)
    if quality_cols is not None:
        quality[:, quality_cols] = 2
    write_raster(path.with_name(f"{date}_quality.tif"), quality, {**prof, "nodata": None})
    return path


def write_at_origin(path: Path, data: np.ndarray, nodata: float) -> Path:
    """A raster of ``data`` (bands, H, W) whose top left corner is (X0, Y0), 10 m pixels."""
    prof = geotiff_profile(
        crs="EPSG:32632", transform=Affine(10, 0, X0, 0, -10, Y0), width=data.shape[2],
        height=data.shape[1], count=data.shape[0], dtype=data.dtype.name, nodata=nodata,
    )  # fmt: skip
    return write_raster(path, data, prof)
