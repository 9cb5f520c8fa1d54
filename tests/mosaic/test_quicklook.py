"""The mosaic quicklook: a few dates of a mosaic folder as RGB beside their tile count."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from cloudfree.errors import InputDataError
from cloudfree.io import geotiff_profile, write_raster
from cloudfree.mosaic import quicklook
from cloudfree.mosaic.quicklook import mosaic_quicklook

from ..test_plotting import assert_png, capture

GRID = dict(crs="EPSG:32632", transform=Affine(10, 0, 500000, 0, -10, 5000000))


@pytest.fixture
def saved(monkeypatch: pytest.MonkeyPatch):
    return capture(monkeypatch, quicklook)


def _write_mosaics(
    folder: Path, n: int, *, counts: bool = True, width: int = 24, height: int = 20
) -> list[str]:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    grid = dict(GRID, width=width, height=height)
    dates = []
    for i in range(n):
        date = f"2021-0{1 + i % 9}-1{i // 9}"
        img = rng.integers(100, 3000, (13, height, width)).astype(np.uint16)
        img[:, :3, :5] = 0  # nodata corner
        prof = geotiff_profile(**grid, count=13, dtype="uint16", nodata=0)
        write_raster(folder / f"{date}.tif", img, prof)
        if counts:
            cprof = geotiff_profile(**grid, count=1, dtype="uint16", nodata=None)
            count = rng.integers(0, 3, (1, height, width))
            write_raster(folder / f"{date}_count.tif", count, cprof)
        dates.append(date)
    (folder / "notes.txt").write_text("ignored")
    return sorted(dates)


def test_mosaic_quicklook_of_one_band(tmp_path: Path, saved) -> None:
    (tmp_path / "mos").mkdir()
    prof = geotiff_profile(**GRID, width=24, height=20, count=1, dtype="uint16", nodata=0)
    img = np.random.default_rng(0).integers(100, 3000, (1, 20, 24)).astype(np.uint16)
    write_raster(tmp_path / "mos" / "2021-01-01.tif", img, prof, band_names=["NDVI"])
    mosaic_quicklook(tmp_path / "mos", tmp_path / "q.png")
    assert_png(tmp_path / "q.png")
    (fig,) = saved
    assert fig.get_suptitle() == "Mosaics of mos (NDVI)"
    assert [t.get_text() for t in fig.axes[1].texts] == ["no count"]


@pytest.mark.parametrize(("n", "counts"), [(1, True), (8, True), (4, False)])
def test_mosaic_quicklook(tmp_path: Path, n: int, counts: bool, saved) -> None:
    dates = _write_mosaics(tmp_path / "mos", n, counts=counts)
    mosaic_quicklook(tmp_path / "mos", tmp_path / "q.png", max_dates=6)
    assert_png(tmp_path / "q.png")
    (fig,) = saved
    assert fig.get_suptitle() == "Mosaics of mos (B04/B03/B02)"
    shown = min(n, 6)
    picks = np.unique(np.round(np.linspace(0, n - 1, shown)).astype(int))  # evenly spread
    rgb_titles = [ax.get_title() for ax in fig.axes[: 2 * shown : 2]]
    assert rgb_titles == [dates[i] for i in picks]
    count_panels = fig.axes[1 : 2 * shown : 2]
    if counts:
        assert [ax.get_title() for ax in count_panels] == ["count"] * shown
        assert fig.axes[-1].get_ylabel() == "tiles per pixel"  # the colour bar
    else:
        assert [t.get_text() for ax in count_panels for t in ax.texts] == ["no count"] * shown


def test_large_mosaics_are_read_decimated(tmp_path: Path, saved) -> None:
    _write_mosaics(tmp_path / "mos", 1, width=1100, height=600)
    mosaic_quicklook(tmp_path / "mos", tmp_path / "q.png")
    rgb, count = (ax.get_images()[0].get_array() for ax in saved[0].axes[:2])
    assert rgb.shape == (200, 367, 3)  # every 3rd pixel: at most MAX_SIZE a side
    assert count.shape == (200, 367)
    assert quicklook.MAX_SIZE == 512


def test_mosaic_quicklook_empty(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputDataError, match=r"no <date>\.tif"):
        mosaic_quicklook(tmp_path / "empty", tmp_path / "q.png")
    with pytest.raises(InputDataError, match="does not exist"):
        mosaic_quicklook(tmp_path / "missing", tmp_path / "q.png")
    assert not (tmp_path / "q.png").exists()
