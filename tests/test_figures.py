"""Report figures (cloudfree.figures): each writes a readable PNG, also on awkward inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from cloudfree.errors import InputDataError
from cloudfree.io import geotiff_profile, write_raster
from cloudfree.metrics.figures import error_vs_difficulty, example_reconstructions, method_bars
from cloudfree.metrics.table import as_method
from cloudfree.mosaic.quicklook import mosaic_quicklook
from cloudfree.packed import iter_tiles
from cloudfree.plotting import rgb_bands
from tests.packed import make_packed

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_side: int = 100) -> None:
    assert path.exists()
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    img = imread(path)
    assert img.ndim == 3 and min(img.shape[:2]) >= min_side and max(img.shape[:2]) < 5000
    assert not list(path.parent.glob(f".{path.name}*")), "temporary file left behind"


def _summary(**extra) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "region": "synth",
            "method": ["model", "linear", "closest", "mean"],
            "mae_masked": [0.004, 0.008, np.nan, 0.014],
            "psnr_observed": [44.0, np.inf, np.inf, 39.0],
        }
    )
    return df.assign(**extra)


def test_method_bars_plain_and_nan(tmp_path: Path) -> None:
    method_bars(_summary(), tmp_path / "bars.png")
    assert_png(tmp_path / "bars.png")
    method_bars(_summary(), tmp_path / "psnr.png", metric="psnr", part="observed")
    assert_png(tmp_path / "psnr.png")


def test_method_bars_with_ci(tmp_path: Path) -> None:
    s = _summary(
        mae_masked_ci_low=[0.003, 0.007, np.nan, 0.015],  # low above the value: clipped
        mae_masked_ci_high=[0.005, np.nan, np.nan, 0.016],
    )
    method_bars(s.drop(columns="region"), tmp_path / "ci.png")
    assert_png(tmp_path / "ci.png")


def test_method_bars_unknown_metric(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="ssim_masked"):
        method_bars(_summary(), tmp_path / "x.png", metric="ssim")


def _table(with_difficulty: bool) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 40
    df = pd.DataFrame(
        {
            "region": "synth",
            "method": np.repeat(["model", "linear"], n // 2),
            "mae_masked": rng.uniform(0, 0.02, n),
        }
    )
    df.loc[::7, "mae_masked"] = np.nan
    if with_difficulty:
        df["cloud_fraction"] = rng.uniform(0, 1, n)
        df["gap_days"] = rng.uniform(0, 30, n)
        df.loc[::5, "gap_days"] = np.nan
    return df


@pytest.mark.parametrize("with_difficulty", [True, False])
def test_error_vs_difficulty(tmp_path: Path, with_difficulty: bool) -> None:
    error_vs_difficulty(_table(with_difficulty), tmp_path / "d.png")
    assert_png(tmp_path / "d.png")


def test_error_vs_difficulty_degenerate(tmp_path: Path) -> None:
    t = _table(True)
    t["mae_masked"] = np.nan  # nothing finite
    error_vs_difficulty(t, tmp_path / "nan.png")
    assert_png(tmp_path / "nan.png")
    t = _table(True).assign(cloud_fraction=0.5)  # one x value
    error_vs_difficulty(t, tmp_path / "flat.png")
    assert_png(tmp_path / "flat.png")
    error_vs_difficulty(t, tmp_path / "nometric.png", metric="rmse_masked")
    assert_png(tmp_path / "nometric.png")


@pytest.fixture(scope="module")
def test_tile(tmp_path_factory: pytest.TempPathFactory):
    path = make_packed(tmp_path_factory.mktemp("packed") / "p.h5", n_tiles=5, size=32, dates=6)
    return next(iter_tiles(path, split="test"))


def test_example_reconstructions(tmp_path: Path, test_tile) -> None:
    tile = test_tile
    assert tile.gap is not None and (tile.gap & tile.clear).any()
    available = tile.clear & ~tile.gap
    preds = {name: as_method(name)(tile, available) for name in ("linear", "closest")}
    model = preds["linear"].copy()
    model[0, :, :4, :4] = np.nan  # NaN predictions are drawn grey, not a failure
    preds = {"model": model, **preds}
    example_reconstructions(tile, preds, tmp_path / "ex.png", dates=2)
    assert_png(tmp_path / "ex.png")
    img = imread(tmp_path / "ex.png")
    assert img.shape[1] > img.shape[0]  # 5 columns, at most 2 rows


def test_example_reconstructions_without_gaps(tmp_path: Path, test_tile) -> None:
    from dataclasses import replace

    tile = replace(test_tile, gap=None)
    example_reconstructions(tile, {}, tmp_path / "none.png")
    assert_png(tmp_path / "none.png", min_side=50)


def test_example_reconstructions_bad_shape(tmp_path: Path, test_tile) -> None:
    with pytest.raises(ValueError, match="shape"):
        example_reconstructions(
            test_tile, {"m": np.zeros((1, 13, 4, 4))}, tmp_path / "x.png"
        )


@pytest.mark.parametrize(
    ("bands", "count", "expected"),
    [
        (None, 13, ((3, 2, 1), "B04/B03/B02")),
        (("B02", "B03", "B04", "B08"), 4, ((2, 1, 0), "B04/B03/B02")),
        (("NDVI",), 1, ((0, 0, 0), "NDVI")),
        ((None, None), 2, ((0, 0, 0), "band 1")),
    ],
)
def test_rgb_bands(bands, count, expected) -> None:
    assert rgb_bands(bands, count) == expected


def test_example_reconstructions_of_one_band(tmp_path: Path) -> None:
    path = make_packed(tmp_path / "p.h5", n_tiles=3, size=16, dates=4, bands=["NDVI"])
    tile = next(iter_tiles(path, split="test"))
    preds = {"linear": as_method("linear")(tile, tile.clear & ~tile.gap)}
    example_reconstructions(tile, preds, tmp_path / "ex.png", bands=["NDVI"])
    assert_png(tmp_path / "ex.png", min_side=50)


def test_mosaic_quicklook_of_one_band(tmp_path: Path) -> None:
    from affine import Affine

    (tmp_path / "mos").mkdir()
    grid = dict(crs="EPSG:32632", transform=Affine(10, 0, 500000, 0, -10, 5000000))
    prof = geotiff_profile(**grid, width=24, height=20, count=1, dtype="uint16", nodata=0)
    img = np.random.default_rng(0).integers(100, 3000, (1, 20, 24)).astype(np.uint16)
    write_raster(tmp_path / "mos" / "2021-01-01.tif", img, prof, band_names=["NDVI"])
    mosaic_quicklook(tmp_path / "mos", tmp_path / "q.png")
    assert_png(tmp_path / "q.png")


def _write_mosaics(folder: Path, n: int, *, counts: bool = True) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    grid = dict(crs="EPSG:32632", transform=None, width=24, height=20)
    from affine import Affine

    grid["transform"] = Affine(10, 0, 500000, 0, -10, 5000000)
    for i in range(n):
        date = f"2021-0{1 + i % 9}-1{i // 9}"
        img = rng.integers(100, 3000, (13, 20, 24)).astype(np.uint16)
        img[:, :3, :5] = 0  # nodata corner
        prof = geotiff_profile(**grid, count=13, dtype="uint16", nodata=0)
        write_raster(folder / f"{date}.tif", img, prof)
        if counts:
            cprof = geotiff_profile(**grid, count=1, dtype="uint16", nodata=None)
            write_raster(folder / f"{date}_count.tif", rng.integers(0, 3, (1, 20, 24)), cprof)
    (folder / "notes.txt").write_text("ignored")


@pytest.mark.parametrize(("n", "counts"), [(1, True), (8, True), (4, False)])
def test_mosaic_quicklook(tmp_path: Path, n: int, counts: bool) -> None:
    _write_mosaics(tmp_path / "mos", n, counts=counts)
    mosaic_quicklook(tmp_path / "mos", tmp_path / "q.png", max_dates=6)
    assert_png(tmp_path / "q.png")


def test_mosaic_quicklook_empty(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputDataError, match=r"no <date>\.tif"):
        mosaic_quicklook(tmp_path / "empty", tmp_path / "q.png")
    with pytest.raises(InputDataError, match="does not exist"):
        mosaic_quicklook(tmp_path / "missing", tmp_path / "q.png")
    assert not (tmp_path / "q.png").exists()
