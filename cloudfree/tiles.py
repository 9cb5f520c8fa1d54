"""The tile stage: fetch or generate a region's tiles and write its manifest."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import ConfigError
from .io import atomic_path
from .manifest import write_manifest


def _synthetic(region: str, cfg: Mapping[str, Any], dest: Path) -> pd.DataFrame:
    from .synthetic import SyntheticSpec, generate_region

    return generate_region(region, SyntheticSpec.from_dict(dict(cfg["synthetic"])), dest)


SOURCES = {"synthetic": _synthetic}


def download_tiles(
    region: str,
    region_cfg: Mapping[str, Any],
    tiles_dir: str | os.PathLike[str],
    manifest_out: str | os.PathLike[str],
) -> pd.DataFrame:
    """Make the region's tiles in ``tiles_dir`` and its manifest, both atomically.

    The tiles are written to a temporary directory moved into place at the end, so a killed
    run never leaves a tile folder that looks complete.
    """
    source = region_cfg.get("source")
    if source not in SOURCES:
        raise ConfigError(
            f"regions.{region}.source: {source!r} is not available; choose one of {sorted(SOURCES)}"
        )
    final = Path(tiles_dir)
    with atomic_path(final) as tmp:
        manifest = SOURCES[source](region, region_cfg, tmp)
        # The manifest must name the files where they will live, not the temporary folder.
        for col in ("image", "mask"):
            manifest[col] = [str(final / Path(p).relative_to(tmp)) for p in manifest[col]]
    write_manifest(manifest, manifest_out)
    return manifest
