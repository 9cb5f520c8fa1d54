"""Inference: reconstruct every tile and date of a region with a trained model.

Reads the model file and the packed region (:mod:`cloudfree.packed`); writes:

- ``tiles_dir/<tile>/<date>.tif``: reconstructed bands on the input grid (uint16, same scale
  and nodata as the input; observed clear pixels keep their input values) and
  ``<date>_quality.tif`` (see ``QUALITY``);
- optional (``infer.embeddings``, ``infer.change``): ``<date>_embedding.tif``, chosen
  channels of the encoder embedding (float32, upsampled to the input grid), and
  ``<date1>_<date2>_change.tif``, the cosine similarity of two dates' embeddings (as
  Planaura does for bi-temporal pairs);
- ``eval.h5``: for every tile with evaluation gaps, the raw model output when those gaps are
  hidden as well, which the metrics stage scores against the known truth.

A model trained with Sentinel-1 input (``train.inputs.s1``) reads each tile's ``s1`` as well,
in the same windows; a packed file without it is refused before anything is written.

``tiles_dir`` is written whole and moved into place (:func:`cloudfree.io.atomic_path`, which
leaves its hidden marker ``.cloudfree-output`` in it); tile names and dates come from the
packed file's checked readers, so none of them can lead outside it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cloudfree.bands import CLOUD, NODATA, REFLECTANCE_SCALE, SHADOW, THIN_CLOUD, to_dn
from cloudfree.errors import InputDataError
from cloudfree.infer.predictor import load_model
from cloudfree.io import atomic_path, geotiff_profile, write_raster
from cloudfree.packed import (
    TileSeries,
    open_packed,
    packed_bands,
    read_tile,
    reading,
    tile_names,
)
from cloudfree.progress import Progress

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


def fill_gaps(tile: TileSeries, refl: np.ndarray) -> np.ndarray:
    """Product DN: observed clear pixels as observed, the rest reconstructed, nodata kept."""
    out = to_dn(refl)
    clear = np.broadcast_to(tile.clear[:, None], out.shape)
    out[clear] = tile.s2[clear]
    out[np.broadcast_to(~tile.valid[:, None], out.shape)] = NODATA
    return out


def change_pairs(dates: list[str], pairs: list[list[str]] | None) -> list[tuple[int, int]]:
    """Date-index pairs of a tile for the change product.

    ``pairs`` lists [earlier, later] ISO dates (pairs a tile lacks are skipped); empty or
    None means every pair of consecutive dates.
    """
    if not pairs:
        return [(i - 1, i) for i in range(1, len(dates))]
    index = {d: i for i, d in enumerate(dates)}
    out = []
    for pair in pairs:
        a, b = (str(d) for d in pair)
        if a in index and b in index:
            out.append((index[a], index[b]))
    return out


def check_s1_input(
    model_path: str | os.PathLike[str], packed_path: str | os.PathLike[str], h5: h5py.File
) -> None:
    """InputDataError unless every tile of the open packed file has an ``s1`` dataset (for a
    model with Sentinel-1 input; metadata only)."""
    names = tile_names(h5)
    with reading(h5):
        lacking = [n for n in names if "s1" not in h5["tiles"][n]]
    if lacking:
        which = "" if len(lacking) == len(names) else f" in tile(s) {', '.join(lacking)}"
        raise InputDataError(
            f"{model_path} was trained with Sentinel-1 input (train.inputs.s1) but "
            f"{packed_path} has no s1 dataset{which}: pack a source with Sentinel-1 "
            "(synthetic.s1, sen12mscrts s1, folder s1, stac.s1)"
        )


def infer_region(
    model_path: str | os.PathLike[str],
    packed_path: str | os.PathLike[str],
    tiles_dir: str | os.PathLike[str],
    eval_out: str | os.PathLike[str],
    *,
    device: str,
    compress: str,
    window: int,
    overlap: int,
    batch_size: int,
    amp: bool,
    embeddings: Mapping[str, Any],
    change: Mapping[str, Any],
    tags: dict[str, str] | None = None,
) -> list[str]:
    """Reconstruct every tile of a packed region; returns the tiles written.

    The keywords are the ``infer`` section's.  ``embeddings`` (``{"enabled", "channels"}``,
    channels empty = all) adds ``<date>_embedding.tif``; ``change`` (``{"enabled",
    "pairs"}``) adds ``<date1>_<date2>_change.tif``, the cosine similarity of the two dates'
    embeddings.  ``tags`` are written into every GeoTIFF.  Raises InputDataError
    (:func:`check_s1_input`) for a model with Sentinel-1 input and a file without it.
    """
    bands = list(packed_bands(packed_path))
    predictor = load_model(
        model_path, device=device, window=window, overlap=overlap, batch_size=batch_size,
        bands=bands, amp=amp,
    )  # fmt: skip
    channels: list[int] = []
    if embeddings["enabled"]:
        channels = [int(c) for c in embeddings["channels"] or range(predictor.embedding_size)]
    written = []
    if predictor.s1_channels:
        with open_packed(packed_path) as h5:
            check_s1_input(model_path, packed_path, h5)
    with (
        open_packed(packed_path) as h5,
        atomic_path(tiles_dir) as tmp_dir,
        atomic_path(eval_out) as tmp_eval,
        h5py.File(tmp_eval, "w") as ev,
    ):
        with reading(h5):
            ev.attrs.update(region=str(h5.attrs["region"]), model=str(model_path))
        Path(tmp_dir).mkdir()  # a region of no tiles still gets its (empty) folder
        names = list(tile_names(h5))  # names and dates checked (they become paths)
        progress = Progress(log, f"inference of {packed_path}", len(names))
        for name in names:
            tile = read_tile(h5, name)
            pairs = change_pairs(tile.dates, change["pairs"]) if change["enabled"] else []
            out = predictor.predict(
                tile.s2, tile.clear, tile.doy, embed_channels=channels, change_pairs=pairs,
                s1=tile.s1,
            )  # fmt: skip
            folder = Path(tmp_dir) / tile.tile
            write_reconstruction(
                tile, fill_gaps(tile, out["pred"]), quality_layer(tile), folder, compress, tags,
                band_names=predictor.bands,
            )  # fmt: skip
            if "embedding" in out:
                _write_embeddings(tile, out["embedding"], channels, folder, compress, tags)
            if "change" in out:
                _write_change(tile, out["change"], pairs, folder, compress, tags)
            if tile.gap is not None:
                hidden_input = tile.clear & ~tile.gap
                pred = predictor.reconstruct(tile.s2, hidden_input, tile.doy, s1=tile.s1)
                g = ev.create_group(f"tiles/{name}")
                g.create_dataset(
                    "pred", data=pred.astype(np.float32), compression="gzip", shuffle=True
                )
            written.append(name)
            log.debug("tile %s: %d dates reconstructed", name, len(tile.dates))
            progress.step()
    return written


def _profile(tile: TileSeries, count: int, dtype: str, nodata: Any, compress: str) -> dict:
    h, w = tile.mask.shape[1:]
    return geotiff_profile(
        crs=tile.crs, transform=tile.transform, width=w, height=h, count=count,
        dtype=dtype, nodata=nodata, compress=compress,
    )  # fmt: skip


def write_reconstruction(
    tile: TileSeries,
    dn: np.ndarray,
    quality: np.ndarray,
    out_dir: Path,
    compress: str,
    tags: dict[str, str] | None,
    band_names: list[str] | None = None,
) -> None:
    """``out_dir/<date>.tif`` (DN ``dn``, the band names, DATE and TILE tags) and
    ``<date>_quality.tif`` of every date of a tile, each written atomically."""
    profile = _profile(tile, dn.shape[1], "uint16", NODATA, compress)
    qprofile = {**profile, "nodata": 0}  # class 0: no data (transparent in a GIS)
    for i, date in enumerate(tile.dates):
        meta = {**(tags or {}), "DATE": date, "TILE": tile.tile}
        write_raster(
            out_dir / f"{date}.tif", dn[i], profile, band_names=band_names, tags=meta,
            scales=[1.0 / REFLECTANCE_SCALE] * dn.shape[1],
        )  # fmt: skip
        write_raster(
            out_dir / f"{date}_quality.tif", quality[i], qprofile,
            band_names=["quality"], tags={**meta, "CLASSES": QUALITY},
        )  # fmt: skip


def _write_embeddings(
    tile: TileSeries,
    emb: np.ndarray,
    channels: list[int],
    out_dir: Path,
    compress: str,
    tags: dict[str, str] | None,
) -> None:
    profile = _profile(tile, len(channels), "float32", float("nan"), compress)
    names = [f"embedding_{c}" for c in channels]
    valid = tile.valid
    for i, date in enumerate(tile.dates):
        data = np.where(valid[i][None], emb[i], np.nan).astype(np.float32)
        meta = {**(tags or {}), "DATE": date, "TILE": tile.tile, "PRODUCT": "embedding"}
        write_raster(out_dir / f"{date}_embedding.tif", data, profile, band_names=names, tags=meta)


def _write_change(
    tile: TileSeries,
    cos: np.ndarray,
    pairs: list[tuple[int, int]],
    out_dir: Path,
    compress: str,
    tags: dict[str, str] | None,
) -> None:
    profile = _profile(tile, 1, "float32", float("nan"), compress)
    valid = tile.valid
    for k, (a, b) in enumerate(pairs):
        d1, d2 = tile.dates[a], tile.dates[b]
        data = np.where(valid[a] & valid[b], cos[k], np.nan).astype(np.float32)
        meta = {
            **(tags or {}), "DATE": d2, "REFERENCE_DATE": d1, "TILE": tile.tile,
            "PRODUCT": "change", "MEANING": "cosine similarity of the embeddings, 1 = no change",
        }  # fmt: skip
        write_raster(
            out_dir / f"{d1}_{d2}_change.tif", data, profile,
            band_names=["cosine_similarity"], tags=meta,
        )  # fmt: skip
