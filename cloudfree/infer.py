"""Inference: reconstruct every tile and date of a region with a trained model.

Two products:

- ``tiles_dir/<tile>/<date>.tif``: reconstructed bands on the input grid (uint16, same scale
  and nodata as the input; observed clear pixels keep their input values) and
  ``<date>_quality.tif`` (see ``QUALITY``);
- ``eval.h5``: for every tile with evaluation gaps, the raw model output when those gaps are
  hidden as well, which the metrics stage scores against the known truth.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py
import numpy as np

from .bands import CLOUD, NODATA, REFLECTANCE_SCALE, S2_L1C_BANDS, SHADOW, THIN_CLOUD
from .io import atomic_path, geotiff_profile, write_raster
from .packing import TileSeries, open_packed, read_tile, tile_names
from .predict import load_model

log = logging.getLogger(__name__)

# Quality layer classes (uint8).
QUALITY = {"nodata": 0, "observed": 1, "reconstructed_cloud": 2, "reconstructed_shadow": 3}


def quality_layer(tile: TileSeries) -> np.ndarray:
    """(T, H, W) uint8 quality classes of a tile's reconstruction."""
    q = np.full(tile.mask.shape, QUALITY["nodata"], dtype=np.uint8)
    valid = tile.valid
    q[valid & tile.clear] = QUALITY["observed"]
    q[valid & np.isin(tile.mask, (CLOUD, THIN_CLOUD))] = QUALITY["reconstructed_cloud"]
    q[valid & (tile.mask == SHADOW)] = QUALITY["reconstructed_shadow"]
    return q


def to_dn(refl: np.ndarray) -> np.ndarray:
    """Reflectance to uint16 DN (1..65535; 0 stays reserved for nodata)."""
    dn = np.rint(np.nan_to_num(refl, nan=0.0) * REFLECTANCE_SCALE)
    return np.clip(dn, 1, np.iinfo(np.uint16).max).astype(np.uint16)


def fill_gaps(tile: TileSeries, refl: np.ndarray) -> np.ndarray:
    """Product DN: observed clear pixels as observed, the rest reconstructed, nodata kept."""
    out = to_dn(refl)
    clear = np.broadcast_to(tile.clear[:, None], out.shape)
    out[clear] = tile.s2[clear]
    out[np.broadcast_to(~tile.valid[:, None], out.shape)] = NODATA
    return out


def infer_region(
    model_path: str | os.PathLike[str],
    packed_path: str | os.PathLike[str],
    tiles_dir: str | os.PathLike[str],
    eval_out: str | os.PathLike[str],
    *,
    device: str = "auto",
    compress: str = "deflate",
    tags: dict[str, str] | None = None,
) -> list[str]:
    """Reconstruct every tile of a packed region; returns the tiles written."""
    predictor = load_model(model_path, device=device)
    written = []
    with (
        open_packed(packed_path) as h5,
        atomic_path(tiles_dir) as tmp_dir,
        atomic_path(eval_out) as tmp_eval,
        h5py.File(tmp_eval, "w") as ev,
    ):
        ev.attrs.update(region=h5.attrs["region"], model=str(model_path))
        for name in tile_names(h5):
            tile = read_tile(h5, name)
            refl = predictor.reconstruct(tile.s2, tile.clear, tile.doy)
            _write_tile(
                tile, fill_gaps(tile, refl), quality_layer(tile), Path(tmp_dir), compress, tags
            )
            if tile.gap is not None:
                hidden_input = tile.clear & ~tile.gap
                pred = predictor.reconstruct(tile.s2, hidden_input, tile.doy)
                g = ev.create_group(f"tiles/{name}")
                g.create_dataset(
                    "pred", data=pred.astype(np.float32), compression="gzip", shuffle=True
                )
            written.append(name)
            log.info("tile %s: %d dates reconstructed", name, len(tile.dates))
    return written


def _write_tile(
    tile: TileSeries,
    dn: np.ndarray,
    quality: np.ndarray,
    out_dir: Path,
    compress: str,
    tags: dict[str, str] | None,
) -> None:
    _, c, h, w = dn.shape
    profile = geotiff_profile(
        crs=tile.crs, transform=tile.transform, width=w, height=h, count=c,
        dtype="uint16", nodata=NODATA, compress=compress,
    )  # fmt: skip
    qprofile = {**profile, "nodata": None}
    for i, date in enumerate(tile.dates):
        meta = {**(tags or {}), "DATE": date, "TILE": tile.tile}
        write_raster(
            out_dir / tile.tile / f"{date}.tif", dn[i], profile, band_names=S2_L1C_BANDS, tags=meta
        )
        write_raster(
            out_dir / tile.tile / f"{date}_quality.tif", quality[i], qprofile,
            band_names=["quality"], tags={**meta, "CLASSES": QUALITY},
        )  # fmt: skip
