"""``cloudfree predict`` on small hand-made GeoTIFF series: outputs on the input grid with
their dates, clear errors naming the file, and the ONNX export predicting as PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.cli.export import export_model
from cloudfree.cli.predict import main
from cloudfree.config import schema
from cloudfree.errors import InputDataError, ModelFileError
from cloudfree.infer.exported import load_predictor
from cloudfree.infer.series import read_series
from cloudfree.io import geotiff_profile, write_raster
from cloudfree.models.export import EXTRA_FILE

from ..model_file import infer_settings, write_model_file
from ..series import write_series

DATES = ["2021-03-04", "2021-04-18", "2021-05-09", "2021-06-23", "2021-07-30"]
REGEX = schema()["$defs"]["folder"]["properties"]["date_regex"]["default"]
# small windows, so a 40 px scene is blended from several
FLAGS = ["--window", "32", "--overlap", "8", "--device", "cpu"]


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("scene")
    rows = write_series(root, {"t7": "test"}, DATES, size=40, seed=3)
    return {"images": [Path(p) for p in rows["image"]], "masks": [Path(p) for p in rows["mask"]]}


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small network with the default temporal prior (its ops must export too)."""
    return write_model_file(tmp_path_factory.mktemp("m") / "model.pt", prior="linear_offset")


def _args(scene: dict, out: Path, images: list[Path] | None = None) -> list[str]:
    images = scene["images"] if images is None else images
    return [*map(str, images), "--masks", *map(str, scene["masks"]), "--out", str(out), *FLAGS]


def test_outputs_keep_grid_nodata_dates_and_observed_pixels(
    scene: dict, model: Path, tmp_path: Path
) -> None:
    assert main([str(model), *_args(scene, tmp_path)]) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([f"{d}.tif" for d in DATES] + [f"{d}_quality.tif" for d in DATES])
    for date, image, mask in zip(DATES, scene["images"], scene["masks"], strict=True):
        with rasterio.open(image) as src, rasterio.open(tmp_path / f"{date}.tif") as out:
            assert (out.crs, out.transform, out.shape) == (src.crs, src.transform, src.shape)
            assert out.nodata == 0 and out.dtypes[0] == "uint16"
            assert out.descriptions == tuple(S2_L1C_BANDS)
            assert out.tags()["DATE"] == date and out.tags()["TILE"] == "t7"
            assert out.tags()["MODEL"] == "model.pt"
            given, got = src.read(), out.read()
        with rasterio.open(mask) as m, rasterio.open(tmp_path / f"{date}_quality.tif") as q:
            classes, quality = m.read(1), q.read(1)
            assert q.nodata == 0 and q.tags()["DATE"] == date
        clear = classes == 0
        np.testing.assert_array_equal(got[:, clear], given[:, clear])  # observed: kept
        assert (quality[clear] == 1).all() and (quality[classes == 1] == 2).all()
        assert (quality[classes == 3] == 3).all()
        assert (got[:, ~clear] != given[:, ~clear]).mean() > 0.9  # reconstructed


def test_dates_from_tags_names_or_flags_and_sorted(scene: dict, tmp_path: Path) -> None:
    images, masks = scene["images"][::-1], scene["masks"][::-1]
    tile = read_series(images, masks, bands=S2_L1C_BANDS, date_regex=REGEX)
    assert tile.dates == DATES  # the DATE tags, sorted
    np.testing.assert_array_equal(tile.doy, [63, 108, 129, 174, 211])
    named = []
    for k, path in enumerate(images):  # no DATE tag: the file name says it
        data = rasterio.open(path).read()
        named.append(tmp_path / f"S2_{DATES[::-1][k].replace('-', '')}_x.tif")
        prof = geotiff_profile(crs="EPSG:32632", transform=rasterio.open(path).transform,
                               width=40, height=40, count=13, dtype="uint16", nodata=0)  # fmt: skip
        write_raster(named[-1], data, prof)
    assert read_series(named, masks, bands=S2_L1C_BANDS, date_regex=REGEX).dates == DATES
    given = ["2022-01-01", "2022-01-02", "2022-01-03", "2022-01-04", "2022-01-05"]
    tile = read_series(named, masks, bands=S2_L1C_BANDS, date_regex=REGEX, dates=given)
    assert tile.dates == given
    np.testing.assert_array_equal(tile.s2[0], rasterio.open(named[0]).read())


def _copy(path: Path, dest: Path, **changes: object) -> Path:
    with rasterio.open(path) as src:
        data, prof, tags = src.read(), dict(src.profile), src.tags()
    count = changes.pop("count", None)
    if count is not None:
        data = data[:count]
    prof.update(count=data.shape[0], **changes)
    with rasterio.open(dest, "w", **prof) as dst:
        dst.write(data)
        dst.update_tags(**tags)
    return dest


def test_mismatched_grids_bands_and_inputs_name_the_file(
    scene: dict, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = list(scene["images"])
    moved = _copy(images[2], tmp_path / "moved.tif", transform=from_origin(600010, 5e6, 10, 10))
    with pytest.raises(InputDataError, match=r"moved\.tif: image transform .* differs from "):
        read_series([*images[:2], moved, *images[3:]], scene["masks"], bands=S2_L1C_BANDS,
                    date_regex=REGEX)  # fmt: skip
    other = _copy(images[1], tmp_path / "other_crs.tif", crs="EPSG:32633")
    with pytest.raises(InputDataError, match=r"other_crs\.tif: image CRS"):
        read_series([images[0], other, *images[2:]], scene["masks"], bands=S2_L1C_BANDS,
                    date_regex=REGEX)  # fmt: skip
    four = _copy(images[0], tmp_path / "four.tif", count=4)
    code = main([str(model), *_args(scene, tmp_path / "out", [four, *images[1:]])])
    assert code == 1
    err = capsys.readouterr().err
    assert "cloudfree predict: error:" in err and "four.tif: 4 bands" in err
    mask = _copy(scene["masks"][3], tmp_path / "mask.tif", width=39)
    with pytest.raises(InputDataError, match=r"mask\.tif: cloud mask size"):
        read_series(images, [*scene["masks"][:3], mask, scene["masks"][4]],
                    bands=S2_L1C_BANDS, date_regex=REGEX)  # fmt: skip
    with pytest.raises(InputDataError, match="4 masks for 5 images"):
        read_series(images, scene["masks"][:4], bands=S2_L1C_BANDS, date_regex=REGEX)
    floats = _copy(images[0], tmp_path / "floats.tif", dtype="float32")
    with pytest.raises(InputDataError, match=r"floats\.tif: float32 pixels"):
        read_series([floats, *images[1:]], scene["masks"], bands=S2_L1C_BANDS, date_regex=REGEX)
    with pytest.raises(InputDataError, match="is also the date of"):
        read_series(images, scene["masks"], bands=S2_L1C_BANDS, date_regex=REGEX,
                    dates=[DATES[0]] * 5)  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_bands_are_taken_by_name_in_any_order(scene: dict, tmp_path: Path) -> None:
    bands = ["B02", "B03", "B04", "B08"]
    path = scene["images"][0]
    data = rasterio.open(path).read()[[7, 3, 2, 1]]  # B08, B04, B03, B02
    prof = {**rasterio.open(path).profile, "count": 4}
    shuffled = write_raster(tmp_path / "x.tif", data, prof, band_names=["B8", "b4", "B03", "B2"],
                            tags={"DATE": DATES[0]})  # fmt: skip
    tile = read_series([shuffled], scene["masks"][:1], bands=bands, date_regex=REGEX)
    np.testing.assert_array_equal(tile.s2[0], rasterio.open(path).read()[[1, 2, 3, 7]])
    with pytest.raises(InputDataError, match=r"x\.tif: bands B8, b4, B03, B2; .* B05 missing"):
        read_series([shuffled], scene["masks"][:1], bands=[*bands, "B05"], date_regex=REGEX)


def test_onnx_predict_matches_pytorch_predict(scene: dict, model: Path, tmp_path: Path) -> None:
    onnx_path = tmp_path / "model.onnx"
    export_model(model, onnx_path, "onnx", 1e-4)
    s = infer_settings(window=32, overlap=8)
    kwargs = dict(window=s["window"], overlap=s["overlap"], batch_size=s["batch_size"], amp=False)
    tile = read_series(scene["images"], scene["masks"], bands=S2_L1C_BANDS, date_regex=REGEX)
    args = (tile.s2, tile.clear, tile.doy)
    torch_pred = load_predictor(model, "cpu", **kwargs).reconstruct(*args)
    onnx_pred = load_predictor(onnx_path, "cpu", **kwargs).reconstruct(*args)
    assert onnx_pred.shape == torch_pred.shape == (5, 13, 40, 40)
    assert float(np.max(np.abs(onnx_pred - torch_pred))) <= 1e-4
    out_pt, out_onnx = tmp_path / "pt", tmp_path / "onnx"
    assert main([str(model), *_args(scene, out_pt)]) == 0
    assert main([str(onnx_path), *_args(scene, out_onnx)]) == 0
    for date in DATES:  # the same DN but where rounding a value 1e-4 apart differs
        a = rasterio.open(out_pt / f"{date}.tif").read().astype(int)
        b = rasterio.open(out_onnx / f"{date}.tif").read().astype(int)
        assert np.abs(a - b).max() <= 1 and (a != b).mean() < 1e-3
        q1 = rasterio.open(out_pt / f"{date}_quality.tif").read()
        np.testing.assert_array_equal(q1, rasterio.open(out_onnx / f"{date}_quality.tif").read())


def test_torchscript_predicts_as_pytorch_and_bad_metadata_is_refused(
    scene: dict, model: Path, tmp_path: Path
) -> None:
    ts = tmp_path / "model.ts"
    export_model(model, ts, "torchscript", 1e-4)
    kwargs = dict(window=32, overlap=8, batch_size=4, amp=False)
    tile = read_series(scene["images"], scene["masks"], bands=S2_L1C_BANDS, date_regex=REGEX)
    args = (tile.s2, tile.clear, tile.doy)
    want = load_predictor(model, "cpu", **kwargs).reconstruct(*args)
    got = load_predictor(ts, "cpu", **kwargs).reconstruct(*args)
    assert float(np.max(np.abs(got - want))) <= 1e-4
    extra = {EXTRA_FILE: ""}
    module = torch.jit.load(str(ts), _extra_files=extra)
    meta = json.loads(extra[EXTRA_FILE])
    meta["norm"]["std"][4] = 0.0
    bad = tmp_path / "bad.ts"
    torch.jit.save(module, str(bad), _extra_files={EXTRA_FILE: json.dumps(meta)})
    with pytest.raises(ModelFileError, match=r"bad\.ts: normalisation std of band B05 is 0\.0"):
        load_predictor(bad, "cpu", **kwargs)
