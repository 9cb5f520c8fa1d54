"""The tile stage: fetch, crop or generate a region's tiles and write its manifest.

Sources (``regions.<name>.source``): ``synthetic`` (generated), ``sen12mscrts`` (the dataset
on disk), ``folder`` (per-date GeoTIFFs) and ``stac`` (L2A COGs over HTTP).  Each returns
manifest rows whose paths are either inside the staging folder (tiles it wrote) or outside
it (files it points at, never copied).  Rows without a cloud mask go through the cloud
detector before the manifest is written.  The tile folder and the manifest carry the same
download stamp (:mod:`cloudfree.tiles.settings`), so packing can tell when another run has
rewritten the tile folder since.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from cloudfree.clouds.detector import masks_for_manifest
from cloudfree.config import SOURCE_EXECUTION_KEYS
from cloudfree.errors import ConfigError
from cloudfree.io import replace_directory
from cloudfree.manifest import (
    OPTIONAL_COLUMNS,
    PATH_COLUMNS,
    normalize_manifest,
    validate_manifest,
    write_manifest,
)
from cloudfree.tiles.folder import folder_tiles
from cloudfree.tiles.sen12mscrts import sen12mscrts_tiles
from cloudfree.tiles.settings import TILES_STAMP, manifest_stamp_path, new_stamp, write_stamp
from cloudfree.tiles.stac import stac_tiles
from cloudfree.tiles.synthetic.region import synthetic_tiles

log = logging.getLogger(__name__)

# A source: (region name, its resolved source section, staging folder) -> manifest rows.
# All are imported above: none has an optional dependency (the cloud detector imports
# s2cloudless and lleaves itself, when it runs).
Source = Callable[[str, Mapping[str, Any], Path], pd.DataFrame]
SOURCES: dict[str, Source] = {
    "synthetic": synthetic_tiles,
    "sen12mscrts": sen12mscrts_tiles,
    "folder": folder_tiles,
    "stac": stac_tiles,
}
# Sources whose partial work is kept after a failure, so a rerun fetches only what is missing.
RESUMABLE = {"stac"}


SETTINGS_STAMP = ".settings.json"  # a staging folder is resumed only with the same settings


# How a source is reached, not what it gives: a change keeps the tiles already fetched.
# The execution keys (which rerun nothing), plus the address and signing of the catalogue
# (a rerun is due, but tiles already fetched from a mirror stay valid).
TRANSPORT_KEYS = frozenset({*SOURCE_EXECUTION_KEYS, "url", "sign", "sign_url"})


def _settings(region_cfg: Mapping[str, Any], clouds_cfg: Mapping[str, Any]) -> str:
    """The settings that decide a region's tiles, as a stable string."""
    region = {
        k: {kk: vv for kk, vv in v.items() if kk not in TRANSPORT_KEYS}
        if isinstance(v, Mapping) else v
        for k, v in region_cfg.items()
    }  # fmt: skip
    return json.dumps({"region": region, "clouds": dict(clouds_cfg)}, sort_keys=True,
                      default=str)  # fmt: skip


def _stamp_of(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def staging_dir(tiles_dir: str | os.PathLike[str]) -> Path:
    """The hidden sibling folder a region's tiles are written to before being moved in place."""
    final = Path(tiles_dir)
    return final.with_name(f".{final.name}.partial")


def _relocate(manifest: pd.DataFrame, tmp: Path, final: Path) -> pd.DataFrame:
    """Point paths written under the staging folder at the final folder."""
    tmp_abs = tmp.resolve()
    out = manifest.copy()
    for col in PATH_COLUMNS:
        if col not in out.columns:
            continue
        new = []
        for value in out[col].fillna("").astype(str):
            if not value:
                new.append("")
                continue
            path = Path(value)
            try:
                rel = path.resolve().relative_to(tmp_abs)
            except ValueError:
                new.append(value)  # a file the source points at; it stays where it is
            else:
                new.append(str(final / rel))
        out[col] = new
    return out


def _detect_missing_masks(
    manifest: pd.DataFrame, dest: Path, clouds_cfg: Mapping[str, Any], threads: int | None
) -> pd.DataFrame:
    for col in OPTIONAL_COLUMNS:
        if col not in manifest.columns:
            manifest[col] = ""
    empty = manifest["mask"].fillna("").astype(str).str.strip() == ""
    if not empty.any():
        return manifest
    log.info("detecting clouds on %d tile dates without a mask", int(empty.sum()))
    detected = masks_for_manifest(manifest.loc[empty].copy(), dest, clouds_cfg, threads=threads)
    out = manifest.copy()
    for col in ("mask", "probability"):
        out.loc[empty, col] = detected[col].to_numpy()
    return out


def download_tiles(
    region: str,
    region_cfg: Mapping[str, Any],
    tiles_dir: str | os.PathLike[str],
    manifest_out: str | os.PathLike[str],
    clouds_cfg: Mapping[str, Any],
    threads: int | None = None,
) -> pd.DataFrame:
    """Make the region's tiles in ``tiles_dir`` and its manifest, both atomically.

    ``region_cfg`` is the region's resolved config (``source`` and its section);
    ``clouds_cfg`` holds the resolved ``detector`` settings when the source may come
    without cloud masks (else it may be empty); the cloud detector runs on ``threads``
    threads (the job's; default: the CPUs the process may use).

    The tiles are written to a hidden staging folder moved into place at the end, so a
    failed run never leaves a tile folder that looks complete.  A resumable source (STAC)
    keeps its staging folder after a failure, so the next run fetches only what is missing.
    The tile folder gets a download stamp (settings hash and a unique id, ``.download.json``)
    and the manifest the same one beside it (``<manifest stem>.download.json``, written
    before the manifest).
    """
    source = region_cfg.get("source")
    if source not in SOURCES:
        raise ConfigError(
            f"regions.{region}.source: {source!r} is not available; choose one of {sorted(SOURCES)}"
        )
    settings_of_source = region_cfg.get(source)
    if not isinstance(settings_of_source, Mapping):
        raise ConfigError(f"regions.{region}.{source}: section missing for its source")
    final = Path(tiles_dir)
    tmp = staging_dir(final)
    stamp = tmp / SETTINGS_STAMP
    settings = _settings(region_cfg, clouds_cfg)
    kept = _stamp_of(stamp)  # None: left by a version that wrote no stamp, resumed as it is
    if tmp.exists() and (source not in RESUMABLE or kept not in (None, settings)):
        if source in RESUMABLE:
            log.info("%s: settings changed since the interrupted run; starting over", tmp)
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    stamp.write_text(settings)
    try:
        manifest = SOURCES[source](region, settings_of_source, tmp)
        manifest = validate_manifest(manifest, f"regions.{region}", require_masks=False)
        manifest = _detect_missing_masks(manifest, tmp / "clouds", clouds_cfg, threads)
        manifest = _relocate(manifest, tmp, final)
        manifest = normalize_manifest(manifest, f"regions.{region}")
        stamp.unlink()
        download = new_stamp(region, settings, final)
        write_stamp(tmp / TILES_STAMP, download)
        replace_directory(tmp, final)  # never a folder that cloudfree did not write
    except BaseException:
        if source not in RESUMABLE or not any(p != stamp for p in tmp.iterdir()):
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_stamp(manifest_stamp_path(manifest_out), download)
    write_manifest(manifest, manifest_out)
    return manifest
