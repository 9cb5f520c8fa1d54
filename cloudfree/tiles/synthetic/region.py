"""A synthetic region written as tiles: every date rendered, cut into tiles and written.

Reads a resolved ``synthetic`` section; writes ``<dest>/<tile>/<date>_S2.tif`` (13 x uint16
DN, nodata 0), ``<dest>/<tile>/<date>_CLD.tif`` (uint8 mask, nodata 255) and, with ``s1``,
``<dest>/<tile>/<date>_S1.tif`` (float32 VV, VH in dB, nodata NaN, rendered on the S1
acquisition matched to the date; none when no acquisition lies within ``s1_max_days``) and
returns the region's manifest rows.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.errors import ConfigError
from cloudfree.manifest import manifest_row, normalize_manifest
from cloudfree.progress import Progress
from cloudfree.tiles.grid import Grid, block_splits, tile_windows, write_tile
from cloudfree.tiles.synthetic.radar import build_radar, matched_s1, render_s1
from cloudfree.tiles.synthetic.scene import build_scene, render_date
from cloudfree.tiles.synthetic.spec import SOURCE, SyntheticSpec, check_size
from cloudfree.tiles.synthetic.weather import acquisition_dates, date_conditions

log = logging.getLogger(__name__)


def region_grid(spec: SyntheticSpec) -> Grid:
    """The full pixel grid of the region, its upper-left corner at ``origin``."""
    rows, cols = spec.region_shape
    res, (left, top) = spec.resolution, spec.origin
    return Grid(CRS.from_user_input(spec.crs), Affine(res, 0.0, left, 0.0, -res, top), cols, rows)


def region_tiles(spec: SyntheticSpec) -> dict[str, Window]:
    """Tile id ``r<row>c<col>`` -> its window of the region grid."""
    rows, cols = spec.region_shape
    return tile_windows(cols, rows, spec.tile_size, spec.overlap)


def tile_splits(spec: SyntheticSpec) -> dict[str, str]:
    """Tile id -> train/val/test, by spatial blocks of ``spec.split_block`` tiles a side;
    at least one tile of each split.  An evaluation scene (``test_only``): every tile test."""
    if spec.test_only:
        return dict.fromkeys(region_tiles(spec), "test")
    return block_splits(
        region_tiles(spec), block=spec.split_block, val_fraction=spec.val_fraction,
        test_fraction=spec.test_fraction, seed=spec.seed,
    )  # fmt: skip


def write_date(
    dest: Path, tile: str, iso: str, grid: Grid, *, image: np.ndarray, mask: np.ndarray,
    s1: np.ndarray | None, s1_day: date | None,
) -> dict[str, str]:  # fmt: skip
    """Write one tile and date: image, cloud mask and, if given, Sentinel-1 (acquired on
    ``s1_day``, tagged with it and its offset in days from the S2 date); their paths."""
    s1_tags = None
    if s1 is not None and s1_day is not None:
        offset = (s1_day - date.fromisoformat(iso)).days
        s1_tags = {"S1_DATE": s1_day.isoformat(), "S1_DAYS": offset}
    return write_tile(
        dest, tile, iso, grid, image=image, band_names=S2_L1C_BANDS, mask=mask,
        s1=s1 if s1_tags else None, tags={"SOURCE": SOURCE}, s1_tags=s1_tags,
    )  # fmt: skip


def generate_region(
    region: str, spec: SyntheticSpec, dest_dir: str | os.PathLike[str]
) -> pd.DataFrame:
    """Write every tile and date of a synthetic region as GeoTIFFs; return its manifest.

    Paths in the manifest are ``dest_dir`` as given joined with the file names.  A region
    too large to generate is refused before anything is allocated
    (:func:`~cloudfree.tiles.synthetic.spec.check_size`).
    """
    if not isinstance(region, str) or not region:
        raise ConfigError(f"synthetic region name must be a non-empty string, got {region!r}")
    check_size(spec, f"regions.{region}.synthetic")
    dest = Path(dest_dir)
    grid = region_grid(spec)
    scene = build_scene(spec)
    windows = region_tiles(spec)
    splits = tile_splits(spec)
    rows: list[dict[str, Any]] = []
    # GDAL compresses with the GIL released: threads write one date's tiles while the
    # next date renders (only one date in flight, so memory stays bounded).
    jobs: list[tuple[str, str, Grid, Future[dict[str, str]]]] = []

    def finish() -> None:
        for tile, iso, tile_grid, job in jobs:  # result() re-raises write errors
            rows.append(manifest_row(region, SOURCE, tile, iso, splits[tile], tile_grid,
                                     **job.result()))  # fmt: skip
        jobs.clear()

    days = acquisition_dates(spec)
    radar = build_radar(spec, scene) if spec.s1 else None
    s1_days = matched_s1(spec, days) if radar is not None else [None] * len(days)
    s1: tuple[date, np.ndarray] | None = None  # the last S1 rendered: neighbours share it
    progress = Progress(log, f"synthetic {region}: dates", len(days))
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for day, s1_day in zip(days, s1_days, strict=True):
            iso = day.isoformat()
            dn, mask = render_date(spec, scene, date_conditions(spec, day))
            if radar is not None and s1_day is not None and (s1 is None or s1[0] != s1_day):
                s1 = (s1_day, render_s1(spec, scene, radar, s1_day))
            finish()
            for tile, win in windows.items():
                tile_grid = grid.window(win)
                rs, cs = win.toslices()
                job = pool.submit(
                    write_date, dest, tile, iso, tile_grid, image=dn[:, rs, cs],
                    mask=mask[rs, cs], s1=s1[1][:, rs, cs] if s1 and s1_day else None,
                    s1_day=s1_day,
                )  # fmt: skip
                jobs.append((tile, iso, tile_grid, job))
            progress.step()
        finish()
    return normalize_manifest(pd.DataFrame(rows), where=f"synthetic {region}")


def evaluation_scene(
    training: Mapping[str, Any],
    inductive: Mapping[str, Any],
    others: Iterable[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The ``synthetic`` section of a region's evaluation scene (``evaluation.inductive``): the
    region's settings with its own seed (land cover, weather, clouds, revisit phase), none of
    the acquisition dates of the training scene or of ``others`` (the synthetic sections of
    the other regions its model trains on), its own grid of tiles, every tile a test tile."""
    spec = SyntheticSpec.from_dict(training)
    taken = set(spec.exclude_dates)
    for section in (training, *others):
        taken |= {d.isoformat() for d in acquisition_dates(SyntheticSpec.from_dict(section))}
    return {
        **spec.as_dict(),
        "seed": spec.seed + int(inductive["seed_offset"]),
        "tiles_x": int(inductive["tiles_x"]),
        "tiles_y": int(inductive["tiles_y"]),
        "overlap": int(inductive["overlap"]),
        "exclude_dates": sorted(taken),
        "test_only": True,
    }


def synthetic_tiles(region: str, cfg: Mapping[str, Any], dest: Path) -> pd.DataFrame:
    """The ``synthetic`` source: generate the region of a resolved ``synthetic`` section."""
    return generate_region(region, SyntheticSpec.from_dict(cfg), dest)
