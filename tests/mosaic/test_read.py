"""Inputs of a mosaic: the target grid, contributions and their scores, readers across
CRSs and resolutions."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import transform_bounds

from cloudfree.errors import InputDataError
from cloudfree.mosaic.read import (
    contributions_of,
    date_code,
    resampling_method,
    target_grid,
)
from cloudfree.mosaic.region import mosaic_date
from cloudfree.mosaic.settings import allowed
from cloudfree.mosaic.write import side_paths

from .inputs import X0, Y0, date_settings, write_tile


def test_target_grid_is_the_union_of_the_files(overlap: list[Path]) -> None:
    grid = target_grid(overlap, None, None)
    assert grid.crs.to_epsg() == 32632 and (grid.width, grid.height) == (24, 16)
    assert grid.transform == Affine(10, 0, X0, 0, -10, Y0)
    coarse = target_grid(overlap, None, 20.0)
    assert (coarse.width, coarse.height) == (12, 8)


def test_contributions_carry_source_date_quality_and_clear_share(overlap: list[Path]) -> None:
    a, b = overlap
    best = contributions_of([b, a], "2021-05-01", ["A", "B"], rule="best_quality")
    assert [c.source for c in best] == [2, 1] and {c.date for c in best} == {20210501}
    assert [c.quality for c in best] == [[b.with_name("2021-05-01_quality.tif")],
                                          [a.with_name("2021-05-01_quality.tif")]]  # fmt: skip
    # half the clear share: B is reconstructed in 6 of 16 columns, A in 4
    assert [c.score for c in best] == [0.5 * 10 / 16, 0.5 * 12 / 16]
    assert [c.score for c in contributions_of([a], "2021-05-01", ["A"], rule="max")] == [0.0]


def test_date_codes_and_resampling_methods() -> None:
    assert date_code("2021-05-01") == 20210501
    assert date_code("2021-05-01_2021-05-11") == 20210511  # a change map: the later date
    assert date_code(None) == 0 and date_code("composite") == 0
    for name in allowed("resampling"):
        assert resampling_method(name) is Resampling[name]


def test_tiles_in_different_crs_mosaic_together(tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    a = write_tile(root, "A", X0, 100)
    # B covers x 80..240 like before, but stored in WGS84 (a different CRS).
    left, bottom, right, top = transform_bounds("EPSG:32632", "EPSG:4326", X0 + 80, Y0 - 160,
                                                X0 + 240, Y0)  # fmt: skip
    res = (right - left) / 32
    shape = (round((top - bottom) / res), 32)
    b = write_tile(
        root, "B", 0, 200, crs="EPSG:4326", transform=Affine(res, 0, left, 0, -res, top),
        shape=shape,
    )  # fmt: skip
    dest = tmp_path / "m.tif"
    mosaic_date([a, b], dest, **date_settings(rule="last", resampling="nearest"))
    with rasterio.open(dest) as src:
        assert src.crs.to_epsg() == 32632 and src.res == (10.0, 10.0)
        data = src.read(1)
    with rasterio.open(side_paths(dest)["count"]) as src:
        count = src.read(1)
    assert count.max() == 2
    assert (data[2:-2, 10:14] == 200).all() and (data[2:-2, :7] == 100).all()
    assert (count[2:-2, 10:14] == 2).all()


def test_reprojection_and_resolution(overlap: list[Path], tmp_path: Path) -> None:
    mosaic_date(overlap, tmp_path / "g.tif", **date_settings(rule="mean", crs="EPSG:4326"))
    with rasterio.open(tmp_path / "g.tif") as src:
        assert src.crs.to_epsg() == 4326 and src.res[0] < 0.01
        data = src.read(1)
    valid = data != 0
    assert valid.mean() > 0.5 and set(np.unique(data[valid])) <= set(range(100, 201))
    settings = date_settings(rule="first", resolution=20.0, resampling="nearest")
    mosaic_date(overlap, tmp_path / "r.tif", **settings)
    with rasterio.open(tmp_path / "r.tif") as src:
        assert src.res == (20.0, 20.0) and (src.width, src.height) == (12, 8)


def test_an_unreadable_contribution_names_the_file(overlap: list[Path], tmp_path: Path) -> None:
    bad = overlap[0].with_name("2021-05-01.tif")
    bad.write_bytes(b"not a tiff")
    with pytest.raises(InputDataError, match=f"cannot read raster {re.escape(str(bad))}"):
        target_grid([bad], None, None)
