"""The COGs of a mosaic: TIFF layout (tiles, overviews only above one 256 px block, IFD and
data order), contents kept through the copy, side layers in place before the mosaic, and the
stage's progress lines."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio

import cloudfree.io
import cloudfree.mosaic.write
from cloudfree.mosaic.region import mosaic_date, mosaic_region
from cloudfree.mosaic.write import side_paths

from .cog_layout import read_layout
from .inputs import date_settings, region_settings, write_at_origin


def _layers(dest: Path) -> dict[str, Path]:
    return {"value": dest} | side_paths(dest)


def _source(tmp_path: Path, height: int, width: int) -> tuple[Path, np.ndarray]:
    data = np.arange(2 * height * width, dtype=np.uint16).reshape(2, height, width) % 4000 + 1
    data[:, :3, :5] = 0  # nodata
    path = write_at_origin(tmp_path / "tiles" / "A" / "2021-01-01.tif", data, 0)
    with rasterio.open(path, "r+") as dst:
        dst.update_tags(DATE="2021-01-01", SENSOR="S2")
    return path, data


@pytest.mark.parametrize(
    ("height", "width", "overviews"),
    [(16, 24, []), (256, 256, []), (16, 257, [(129, 8)]), (257, 40, [(20, 129)])],
)
def test_overviews_only_above_one_block_in_either_dimension(
    tmp_path: Path, height: int, width: int, overviews: list
) -> None:
    src, data = _source(tmp_path, height, width)
    dest = mosaic_date([src], tmp_path / "m" / "2021-01-01.tif", **date_settings(rule="max"))
    for name, path in _layers(dest).items():
        layout = read_layout(path)
        assert layout.errors() == [], name
        assert (layout.images[0].width, layout.images[0].height) == (width, height)
        assert layout.overviews == overviews
        assert all(i.tile == (256, 256) for i in layout.images)
        with rasterio.open(path) as m:
            assert len(m.overviews(1)) == len(overviews)
            assert m.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
    with rasterio.open(dest) as m:
        np.testing.assert_array_equal(m.read(), data)


def test_a_mosaic_above_one_block_has_overviews_down_to_one_block(tmp_path: Path) -> None:
    src, data = _source(tmp_path, 258, 600)
    with rasterio.open(src) as s:
        crs, transform = s.crs, s.transform
    dest = mosaic_date([src], tmp_path / "m" / "2021-01-01.tif", **date_settings(rule="max"))
    for name, path in _layers(dest).items():
        layout = read_layout(path)
        assert layout.errors() == [], name
        assert layout.overviews == [(300, 129), (150, 65)]  # the last one within one block
        assert all(i.tile == (256, 256) for i in layout.images)
        with rasterio.open(path) as m:
            assert m.overviews(1) == [2, 4] and m.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert (m.crs, m.transform, m.width, m.height) == (crs, transform, 600, 258)
            assert m.tags()["MOSAIC_RULE"] == "max" and m.tags()["SOURCES"] == '["A"]'
    with rasterio.open(dest) as m:
        assert m.nodata == 0 and m.dtypes == ("uint16", "uint16")
        assert m.tags()["SENSOR"] == "S2" and m.tags()["DATE"] == "2021-01-01"
        np.testing.assert_array_equal(m.read(), data)
        # overviews average the values (nodata left out)
        assert m.read(1, out_shape=(129, 300))[5, 10] == pytest.approx(
            data[0, 10:12, 20:22].mean(), abs=1
        )
    with rasterio.open(side_paths(dest)["count"]) as c:
        np.testing.assert_array_equal(c.read(1), (data[0] > 0).astype(np.uint16))
    assert sorted(p.name for p in dest.parent.iterdir()) == sorted(
        p.name for p in _layers(dest).values()
    )  # no temporary left


def test_the_plain_format_is_no_cog(tmp_path: Path) -> None:
    src, data = _source(tmp_path, 300, 300)
    dest = mosaic_date(
        [src], tmp_path / "m" / "2021-01-01.tif", **date_settings(rule="max", format="gtiff")
    )
    layout = read_layout(dest)
    assert layout.overviews == [] and layout.images[0].tile == (256, 256)
    assert layout.errors()  # tiles in window order, IFD at the end
    with rasterio.open(dest) as m:
        np.testing.assert_array_equal(m.read(), data)


@pytest.mark.parametrize("fmt", ["cog", "gtiff"])
def test_side_layers_are_moved_into_place_before_the_mosaic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    src, _ = _source(tmp_path, 16, 24)
    moved: list[str] = []
    move = cloudfree.io._move_into_place

    def record(tmp: Path, final: Path) -> None:
        moved.append(final.name)
        move(tmp, final)

    monkeypatch.setattr(cloudfree.io, "_move_into_place", record)
    mosaic_date([src], tmp_path / "m" / "d.tif", **date_settings(rule="max", format=fmt))
    assert moved[-1] == "d.tif" and sorted(moved[:-1]) == [
        "d_count.tif", "d_date.tif", "d_quality.tif", "d_source.tif",
    ]  # fmt: skip


def test_a_failing_side_layer_leaves_no_mosaic_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, _ = _source(tmp_path, 16, 24)
    to_cog = cloudfree.mosaic.write.to_cog

    def failing(src: Path, dest: Path, *args: object) -> None:
        if src.stem == "quality":
            raise OSError("disk failure")
        to_cog(src, dest, *args)

    monkeypatch.setattr(cloudfree.mosaic.write, "to_cog", failing)
    with pytest.raises(OSError, match="disk failure"):
        mosaic_date([src], tmp_path / "m" / "d.tif", **date_settings(rule="max"))
    assert list((tmp_path / "m").iterdir()) == []


def test_the_stage_logs_its_progress_over_the_windows_of_all_mosaics(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _source(tmp_path, 16, 24)
    dest = tmp_path / "mosaics"
    with caplog.at_level(logging.INFO, logger="cloudfree.mosaic.region"):
        mosaic_region(
            tmp_path / "tiles", dest, **{**region_settings(rule="max"), "block": 16},
            dates=["2021-01-11"], every=30.0, clock=lambda: 0.0,
        )  # fmt: skip
    lines = [r.getMessage() for r in caplog.records if r.name == "cloudfree.mosaic.region"]
    # 2 dates and the composite, 2 windows each; the first and the last window logged
    what = f"mosaics of {dest} (3 x 2 windows)"
    assert lines == [
        f"{what}: 1 of 6 (17 %), 0 s elapsed, ETA 0 s",
        f"{what}: 6 of 6 (100 %), 0 s elapsed",
    ]


def test_progress_lines_come_at_least_every_30_s(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _source(tmp_path, 16, 24)
    ticks = iter(range(0, 10_000, 10))  # every reading of the clock is 10 s later
    with caplog.at_level(logging.INFO, logger="cloudfree.mosaic.region"):
        mosaic_region(
            tmp_path / "tiles", tmp_path / "m", **{**region_settings(rule="max"), "block": 16},
            dates=["2021-01-11"], every=30.0, clock=lambda: float(next(ticks)),
        )  # fmt: skip
    done = [r.getMessage().split(": ")[1] for r in caplog.records]
    # the clock reads 0 s at the start, then at each window (steps at 10, 30, 40, 60, 70, 90 s)
    # and for each line it logs: a line when 30 s have passed since the one before
    assert done == [
        "1 of 6 (17 %), 20 s elapsed, ETA 1 min 40 s",
        "3 of 6 (50 %), 50 s elapsed, ETA 50 s",
        "5 of 6 (83 %), 1 min 20 s elapsed, ETA 16 s",
        "6 of 6 (100 %), 1 min 40 s elapsed",
    ]
