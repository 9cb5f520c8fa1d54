"""``cloudfree score``: known values on small GeoTIFFs, the masked/observed split, the same
numbers as the evaluation tables, CSV and JSON output, and errors naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.cli import main as dispatch
from cloudfree.cli.score import FILE_COLUMNS, main, render, score_files
from cloudfree.errors import InputDataError
from cloudfree.metrics.single import score_columns
from cloudfree.metrics.table import METRIC_COLUMNS, score_tiles
from cloudfree.packed import TileSeries

H, W = 12, 10
CRS_UTM = CRS.from_epsg(32633)
TRANSFORM = Affine(10, 0, 500000, 0, -10, 6000000)


def write(path: Path, data: np.ndarray, *, nodata=None, transform=TRANSFORM, crs=CRS_UTM,
          descriptions=None, scales=None) -> Path:  # fmt: skip
    arr = data[None] if data.ndim == 2 else data
    profile = dict(driver="GTiff", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0],
                   dtype=arr.dtype.name, crs=crs, transform=transform, nodata=nodata)  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr)
        for i, name in enumerate(descriptions or (), start=1):
            dst.set_band_description(i, name)
        if scales is not None:
            dst.scales = tuple(scales)
    return path


def truth_dn(bands: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(800, 4000, (bands, H, W)).astype(np.uint16)


def gap_block() -> np.ndarray:
    gap = np.zeros((H, W), np.uint8)
    gap[2:6, 3:8] = 1  # 20 hidden pixels
    return gap


@pytest.fixture
def offset_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Truth DN, a prediction 100 DN (0.01 reflectance) brighter everywhere, a 20 px gap."""
    truth = truth_dn()
    return (
        write(tmp_path / "pred.tif", truth + np.uint16(100), nodata=0),
        write(tmp_path / "mask.tif", gap_block()),
        write(tmp_path / "truth.tif", truth, nodata=0),
    )


def test_a_constant_offset_gives_its_mae_and_rmse(offset_files) -> None:
    row = score_files(*offset_files)
    n = H * W
    assert (row["n_masked"], row["n_observed"], row["n_all"]) == (20, n - 20, n)
    for s in ("masked", "observed"):  # masked: the product is the prediction there
        assert row[f"mae_{s}"] == pytest.approx(0.01, rel=1e-5)
        assert row[f"rmse_{s}"] == pytest.approx(0.01, rel=1e-5)
        assert row[f"psnr_{s}"] == pytest.approx(40.0, rel=1e-5)
    # all pixels score the product: the observed ones pasted back, exact
    assert row["mae_all"] == pytest.approx(0.01 * 20 / n, rel=1e-5)
    assert row["rmse_all"] == pytest.approx(0.01 * np.sqrt(20 / n), rel=1e-5)
    assert [row[f"mae_masked_band{b}"] for b in (1, 2, 3)] == pytest.approx([0.01] * 3, rel=1e-5)
    assert row["cloud_fraction"] == pytest.approx(20 / n)
    assert 0 < row["sam_masked"] < 5 and row["ssim_masked"] < 1
    assert tuple(row) == (*FILE_COLUMNS, *score_columns(["band1", "band2", "band3"]),
                          "cloud_fraction")  # fmt: skip
    assert row["clouds"] == "" and row["truth"] == str(offset_files[2])


def test_nodata_and_clouds_split_masked_and_observed(tmp_path: Path) -> None:
    truth = truth_dn(2)
    truth[:, 0, 0] = 0  # no data: never scored, not valid
    pred = truth.astype(np.float32) / 10000 + np.float32(0.02)
    gap = gap_block()
    gap[0, 0] = 1
    clouds = np.zeros((H, W), np.uint8)
    clouds[2, 3:5] = 1  # two hidden cloudy pixels: truth unknown
    clouds[9, :] = 3  # a shadowed row, seen
    clouds[11, 9] = 255  # no mask: not valid
    files = (
        write(tmp_path / "p.tif", pred),
        write(tmp_path / "m.tif", gap),
        write(tmp_path / "t.tif", truth, nodata=0),
    )
    row = score_files(*files, clouds=write(tmp_path / "c.tif", clouds, nodata=255))
    valid = H * W - 2
    clear = valid - 2 - W
    assert row["n_masked"] == 20 - 2
    assert row["n_observed"] == clear - 18
    assert row["n_all"] == clear
    assert row["mae_masked"] == pytest.approx(0.02, rel=1e-4)
    # not seen: the gap, the clouds and the shadow (of the valid pixels)
    assert row["cloud_fraction"] == pytest.approx(1 - (clear - 18) / valid)
    without = score_files(*files)  # every pixel with data is clear
    assert (without["n_masked"], without["n_all"]) == (20, H * W - 1)


def test_the_numbers_are_those_of_the_evaluation_tables(tmp_path: Path) -> None:
    """One date scored by the command equals its row of score_tiles, column by column."""
    truth = truth_dn(13, seed=3)
    rng = np.random.default_rng(5)
    pred = (truth / 10000 + rng.normal(0, 0.01, truth.shape)).astype(np.float32)
    clouds = np.zeros((H, W), np.uint8)
    clouds[7:, :4] = 1
    tile = TileSeries(
        tile="t", split="test", s2=truth[None], mask=clouds[None], dates=["2021-05-01"],
        doy=np.array([121], np.int16), crs=CRS_UTM, transform=TRANSFORM,
        gap=gap_block()[None].astype(bool),
    )  # fmt: skip
    table = score_tiles([tile], {"model": lambda t, a: pred[None]}, S2_L1C_BANDS).dates
    row = score_files(
        write(tmp_path / "p.tif", pred), write(tmp_path / "m.tif", gap_block()),
        write(tmp_path / "t.tif", truth, nodata=0), clouds=write(tmp_path / "c.tif", clouds),
    )  # fmt: skip
    columns = [c for c in row if c not in FILE_COLUMNS]
    assert set(columns) <= set(METRIC_COLUMNS)
    np.testing.assert_array_equal(
        np.array([row[c] for c in columns], float), table[columns].to_numpy(float)[0]
    )


def test_scale_tags_and_options(tmp_path: Path, offset_files) -> None:
    base = score_files(*offset_files)
    pred, mask, truth = offset_files
    with rasterio.open(pred) as src:
        dn = src.read()
    # DN tagged with GDAL's scale, and floats scaled by the option
    tagged = write(tmp_path / "tagged.tif", dn, nodata=0, scales=[1e-4] * 3)
    assert score_files(tagged, mask, truth)["mae_masked"] == pytest.approx(base["mae_masked"])
    floats = write(tmp_path / "f.tif", dn.astype(np.float32))
    scaled = score_files(floats, mask, truth, scaling={"prediction": (1e-4, None)})
    assert scaled["mae_masked"] == pytest.approx(base["mae_masked"], rel=1e-6)
    shifted = score_files(floats, mask, truth, scaling={"prediction": (1e-4, -0.01)})
    assert shifted["mae_masked"] == pytest.approx(0, abs=1e-7)
    with pytest.raises(InputDataError, match=r"prediction .*f\.tif.*--prediction-scale"):
        score_files(floats, mask, truth)  # DN read as reflectance: implausible


def test_csv_json_and_stdout(tmp_path: Path, offset_files, capsys) -> None:
    pred, mask, truth = (str(p) for p in offset_files)
    assert main([pred, mask, truth, "--out", str(tmp_path / "a.csv")]) == 0
    csv = pd.read_csv(tmp_path / "a.csv")
    assert len(csv) == 1 and csv.loc[0, "n_masked"] == 20
    assert main([pred, mask, truth, "--out", str(tmp_path / "a.json")]) == 0
    obj = json.loads((tmp_path / "a.json").read_text())
    assert obj["n_masked"] == 20 and obj["mae_masked"] == pytest.approx(csv.loc[0, "mae_masked"])
    assert list(obj) == list(csv.columns)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    capsys.readouterr()
    assert dispatch(["score", pred, mask, truth, "--bands", "B02,B03,B04"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith(
        "mae_masked_B02,mae_masked_B03,mae_masked_B04,cloud_fraction"
    )
    assert main([pred, mask, truth, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_all"] == H * W


def test_empty_sets_and_perfect_copies(tmp_path: Path) -> None:
    truth = truth_dn(2)
    none = np.zeros((H, W), np.uint8)
    files = (write(tmp_path / "p.tif", truth), write(tmp_path / "m.tif", none),
             write(tmp_path / "t.tif", truth))  # fmt: skip
    row = score_files(*files)
    assert row["n_masked"] == 0 and np.isnan(row["mae_masked"])  # never a silent zero
    assert row["psnr_observed"] == np.inf and row["mae_observed"] == 0
    obj = json.loads(render(row, "json"))
    assert obj["mae_masked"] is None and obj["psnr_observed"] == "inf"
    text = render(row, "csv").splitlines()
    values = dict(zip(text[0].split(","), text[1].split(","), strict=True))
    assert values["mae_masked"] == "" and values["psnr_observed"] == "inf"


def test_band_names_from_the_files(tmp_path: Path) -> None:
    truth = truth_dn(2)
    named = ("B04", "B08")
    pred = write(tmp_path / "p.tif", truth, descriptions=named)
    mask = write(tmp_path / "m.tif", gap_block())
    row = score_files(pred, mask, write(tmp_path / "t.tif", truth))
    assert "mae_masked_B04" in row and "mae_masked_B08" in row
    other = write(tmp_path / "t2.tif", truth, descriptions=("B08", "B04"))
    with pytest.raises(InputDataError, match=r"p\.tif.*t2\.tif.*name their bands differently"):
        score_files(pred, mask, other)
    with pytest.raises(InputDataError, match="3 band names"):
        score_files(pred, mask, other, bands=("a", "b", "c"))


def bad(tmp_path: Path, name: str, data: np.ndarray, **kw) -> Path:
    return write(tmp_path / name, data, **kw)


@pytest.mark.parametrize(
    ("which", "make", "message"),
    [
        ("pred", lambda t, p: bad(p, "x.tif", t[:2]), r"prediction .*x\.tif has 2 bands"),
        ("pred", lambda t, p: bad(p, "x.tif", t, transform=TRANSFORM @ Affine.translation(1, 0)),
         r"prediction .*x\.tif and truth .* differ in transform"),
        ("pred", lambda t, p: bad(p, "x.tif", t, crs=CRS.from_epsg(32634)),
         r"prediction .*x\.tif and truth .* differ in CRS"),
        ("pred", lambda t, p: bad(p, "x.tif", t[:, :-1]), r"prediction .*x\.tif .* differ in size"),
        ("pred", lambda t, p: bad(p, "x.tif", t.astype(np.complex64)),
         r"prediction .*x\.tif: complex64 pixels; expected integers or floats"),
        ("mask", lambda t, p: bad(p, "x.tif", gap_block() * 2), r"mask .*x\.tif: 20 pixels hold"),
        ("mask", lambda t, p: bad(p, "x.tif", np.stack([gap_block()] * 2)),
         r"mask .*x\.tif: 2 bands; a mask has one"),
        ("clouds", lambda t, p: bad(p, "x.tif", gap_block() * 7), r"clouds .*x\.tif: 20 pixels"),
        ("clouds", lambda t, p: bad(p, "x.tif", gap_block().astype(np.float32)),
         r"clouds .*x\.tif: float32 pixels; expected integers"),
    ],
)  # fmt: skip
def test_errors_name_the_file(tmp_path: Path, offset_files, which, make, message) -> None:
    pred, mask, truth = offset_files
    made = make(truth_dn(), tmp_path)
    files = {"pred": pred, "mask": mask, "clouds": None} | {which: made}
    with pytest.raises(InputDataError, match=message):
        score_files(files["pred"], files["mask"], truth, clouds=files["clouds"])


def test_command_errors(tmp_path: Path, offset_files, capsys) -> None:
    pred, mask, truth = (str(p) for p in offset_files)
    (tmp_path / "junk.tif").write_text("not a raster")
    assert main([str(tmp_path / "junk.tif"), mask, truth]) == 1
    assert "error: " + str(tmp_path / "junk.tif") + ": cannot open this prediction GeoTIFF" in (
        capsys.readouterr().err
    )
    out = tmp_path / "scores.txt"
    assert main([pred, mask, truth, "--out", str(out)]) == 1
    assert "scores.txt: cannot tell the format" in capsys.readouterr().err
    assert main([pred, str(tmp_path / "missing.tif"), truth, "--out", str(tmp_path / "s.csv")]) == 1
    assert "missing.tif" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()
    float_mask = write(tmp_path / "fm.tif", gap_block().astype(np.float32))
    assert score_files(Path(pred), float_mask, Path(truth))["n_masked"] == 20


def test_bad_scales_and_memory(tmp_path: Path, offset_files, monkeypatch, capsys) -> None:
    pred, mask, truth = offset_files
    for option in ("--truth-scale=0", "--prediction-scale=nan", "--truth-offset=inf"):
        with pytest.raises(SystemExit) as exit_:
            main([str(pred), str(mask), str(truth), option])
        assert exit_.value.code == 2
    assert "is not above 0" not in capsys.readouterr().out
    with rasterio.open(pred) as src:
        dn = src.read()
    zero = write(tmp_path / "zero.tif", dn, nodata=0, scales=[0.0] * 3)
    with pytest.raises(InputDataError, match=r"prediction .*zero\.tif: band scales 0"):
        score_files(zero, mask, truth)
    monkeypatch.setattr("cloudfree.metrics.rasters.physical_memory", lambda: 10_000)
    with pytest.raises(InputDataError, match=r"truth .*truth\.tif: 3 bands of 10 x 12 px"):
        score_files(pred, mask, truth)
