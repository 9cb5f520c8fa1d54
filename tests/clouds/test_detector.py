"""Tests of cloudfree.clouds.detector: SCL classes, s2cloudless on the real Betsiboka scene,
bad input."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from cloudfree import bands
from cloudfree.bands import CLEAR, CLOUD, MASK_NODATA, SHADOW, THIN_CLOUD
from cloudfree.clouds import detector
from cloudfree.clouds.detector import (
    TAGGED_SETTINGS,
    cache_dir,
    compiled_available,
    compiled_forest,
    detect_stack,
    hash_path,
    l2a_mask,
    make_detector,
    masks_for_manifest,
    scl_to_mask,
    verified,
)
from cloudfree.config import section
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.io import geotiff_profile, read_raster, tag_text, write_raster

# Real L1C scene, CC BY-SA 4.0, contains modified Copernicus Sentinel data; see its README.
BETSIBOKA = Path(__file__).parents[1] / "data" / "s2-l1c-betsiboka"
CLOUDS = section("clouds")
DETECTOR = CLOUDS["detector"]
SCENE = read_raster(BETSIBOKA / "S2L1C_13band_betsiboka.tif")[0]


def detect(image: np.ndarray, settings, factor: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Probability and mask of one (13, H, W) DN image, all pixels valid."""
    prob, mask = detect_stack([image], [np.ones(image.shape[1:], bool)],
                              make_detector(settings), factor)  # fmt: skip
    return prob[0], mask[0]


def test_scl_classes():
    scl = np.arange(12, dtype=np.uint8).reshape(3, 4)
    mask = scl_to_mask(scl)
    expected = [MASK_NODATA, MASK_NODATA, CLEAR, SHADOW, CLEAR, CLEAR, CLEAR, CLEAR,
                CLOUD, CLOUD, THIN_CLOUD, CLEAR]  # fmt: skip
    assert mask.dtype == np.uint8
    assert mask.ravel().tolist() == expected


def test_l2a_without_scl_names_source_tile_and_band():
    with pytest.raises(InputDataError, match=r"source stac, tile T1_0_0, date 2021-05-01.*SCL"):
        l2a_mask(None, source="stac", tile="T1_0_0", date="2021-05-01")


def _row(image: Path, **kw) -> dict:
    return {
        "region": "r", "source": "folder", "tile": "t0", "date": "2021-01-01", "split": "train",
        "image": str(image), "mask": np.nan, **kw,
    }  # fmt: skip


def test_wrong_band_count_names_file_tile_source_and_missing_bands(tmp_path):
    prof = geotiff_profile(
        crs="EPSG:32632", transform=rasterio.transform.from_origin(0, 0, 10, 10), width=8,
        height=8, count=4, dtype="uint16", nodata=0,
    )  # fmt: skip
    path = write_raster(tmp_path / "rgbn.tif", np.ones((4, 8, 8), np.uint16), prof)
    manifest = pd.DataFrame([_row(path)])
    with pytest.raises(InputDataError) as err:
        masks_for_manifest(manifest, tmp_path / "out", CLOUDS)
    msg = str(err.value)
    assert "rgbn.tif" in msg and "tile t0" in msg and "source folder" in msg
    assert "4 bands" in msg and "missing: B05, B06" in msg and "B12" in msg


def test_detector_config_errors():
    # the schema is the check: unknown keys and backends fail before any job runs
    with pytest.raises(ConfigError, match=r"^clouds\.detector: .*'treshold' was unexpected"):
        section("clouds", {"detector": {"treshold": 0.3}})
    with pytest.raises(ConfigError, match=r"^clouds\.detector\.backend: 'gpu' is not one of"):
        section("clouds", {"detector": {"backend": "gpu"}})
    # SEN12MS-CR-TS (Ebel et al.) ran s2cloudless with these settings
    assert {k: DETECTOR[k] for k in ("threshold", "average_over", "dilation_size")} == {
        "threshold": 0.4, "average_over": 4, "dilation_size": 2,
    }  # fmt: skip


def test_rows_with_masks_are_kept(tmp_path):
    manifest = pd.DataFrame([_row(tmp_path / "absent.tif", mask="given.tif")])
    out = masks_for_manifest(manifest, tmp_path, CLOUDS)
    assert out["mask"].tolist() == ["given.tif"]
    assert "probability" in out.columns


@pytest.fixture(scope="module")
def betsiboka_stage(tmp_path_factory):
    """The stage on the Betsiboka scene (default settings: SEN12MS-CR-TS, auto backend)."""
    tmp = tmp_path_factory.mktemp("betsiboka")
    manifest = pd.DataFrame([_row(BETSIBOKA / "S2L1C_13band_betsiboka.tif", mask="")])
    return masks_for_manifest(manifest, tmp, CLOUDS).iloc[0]


def test_betsiboka_agrees_with_the_s2cloudless_reference(betsiboka_stage):
    mask, prof = read_raster(betsiboka_stage["mask"])
    prob, prob_prof = read_raster(betsiboka_stage["probability"])
    ref = read_raster(BETSIBOKA / "cloud_mask_s2cloudless.tif")[0][0]
    ref_prob = read_raster(BETSIBOKA / "cloud_prob_s2cloudless.tif")[0][0]
    cloudy = bands.cloudy(mask[0])  # the detector writes no shadow
    assert (cloudy == (ref == 1)).mean() >= 0.95
    assert abs(cloudy.mean() - 0.456) <= 0.02
    # the probabilities are the reference's (before averaging and dilation)
    np.testing.assert_allclose(prob[0], ref_prob, atol=1e-6)
    with rasterio.open(BETSIBOKA / "S2L1C_13band_betsiboka.tif") as src:
        for p in (prof, prob_prof):
            assert p["crs"] == src.crs and p["transform"] == src.transform
            assert (p["width"], p["height"]) == (src.width, src.height)
    assert mask.dtype == np.uint8 and prob.dtype == np.float32
    with rasterio.open(betsiboka_stage["mask"]) as src:
        tags = src.tags()
    assert tags["detector"] == "s2cloudless"
    assert {k: tags[k] for k in TAGGED_SETTINGS} == tag_text(
        {k: DETECTOR[k] for k in TAGGED_SETTINGS}
    )
    # its georeference gives about 74 m pixels: the 40 m default keeps the tile's own grid
    assert tags["working_factor"] == "1"


@pytest.mark.skipif(not compiled_available(), reason="lleaves with llvmlite < 0.45 missing")
def test_compiled_and_lightgbm_backends_agree():
    image = SCENE[:, 300:428, 200:328]
    p_fast, m_fast = detect(image, {**DETECTOR, "backend": "compiled"})
    p_ref, m_ref = detect(image, {**DETECTOR, "backend": "lightgbm"})
    np.testing.assert_allclose(p_fast, p_ref, atol=1e-6)
    assert (m_fast == m_ref).mean() >= 0.999
    assert 0.05 < m_ref.mean() < 0.95  # the crop has both clouds and clear land


@pytest.mark.skipif(not compiled_available(), reason="lleaves with llvmlite < 0.45 missing")
def test_compiled_model_is_cached_under_a_versioned_name():
    forest = compiled_forest(str(cache_dir(DETECTOR)))  # compiles once per machine, then loads
    name = forest.path.name
    assert forest.path.exists() and forest.path.parent == cache_dir(DETECTOR)
    assert name.startswith("s2cloudless-") and "lleaves" in name and "llvmlite" in name
    # written with its hash, checked before every use
    assert hash_path(forest.path).is_file() and verified(forest.path)


def test_cache_dir_setting_then_environment_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUDFREE_CACHE", str(tmp_path / "env"))
    assert cache_dir({**DETECTOR, "cache_dir": str(tmp_path / "set")}) == tmp_path / "set"
    assert cache_dir({**DETECTOR, "cache_dir": None}) == tmp_path / "env"
    monkeypatch.delenv("CLOUDFREE_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir({**DETECTOR, "cache_dir": None}) == tmp_path / "home/.cache/cloudfree"


# -- working grid, batching, threads ---------------------------------------------------------


def _utm_tile(path: Path, image: np.ndarray) -> Path:
    """A (13, H, W) DN image as a GeoTIFF of 10 m pixels (40 m: a working grid 4 times
    coarser)."""
    prof = geotiff_profile(
        crs="EPSG:32738", transform=rasterio.transform.from_origin(500000, 8250000, 10, 10),
        width=image.shape[2], height=image.shape[1], count=13, dtype="uint16", nodata=None,
    )  # fmt: skip
    return write_raster(path, image, prof)


def _published(image: np.ndarray, settings) -> tuple[np.ndarray, np.ndarray]:
    """The detector as it ran on the tile's own grid, date by date: s2cloudless's
    ``S2PixelCloudDetector`` on the 13 bands with the backend's classifier, then the classes
    and nodata of the stage."""
    from s2cloudless import S2PixelCloudDetector
    from s2cloudless.pixel_classifier import PixelClassifier

    det = S2PixelCloudDetector(threshold=settings["threshold"], all_bands=True,
                               average_over=settings["average_over"],
                               dilation_size=settings["dilation_size"])  # fmt: skip
    if compiled_available():
        det._classifier = PixelClassifier(compiled_forest(str(cache_dir(settings))))
    data = np.moveaxis(image, 0, -1)[np.newaxis].astype(np.float32) / np.float32(10000)
    prob = det.get_cloud_probability_maps(data)[0]
    mask = np.where(det.get_mask_from_prob(prob[np.newaxis])[0] > 0, CLOUD, CLEAR)
    nodata = (image == 0).all(axis=0)
    mask[nodata], prob[nodata] = MASK_NODATA, np.nan
    return prob, mask.astype(np.uint8)


def _stage(tmp_path: Path, images: list[Path], clouds=CLOUDS, threads=None) -> list[tuple]:
    """Masks and probabilities the stage writes for the dates (one tile) of ``images``."""
    rows = [_row(p, date=f"2021-01-{i + 1:02d}") for i, p in enumerate(images)]
    out = masks_for_manifest(pd.DataFrame(rows), tmp_path, clouds, threads=threads)
    result = []
    for _, row in out.iterrows():
        with rasterio.open(row["mask"]) as src:
            mask, tags = src.read(1), src.tags()
        result.append((mask, read_raster(row["probability"])[0][0], tags))
    return result


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    """A 150 x 130 px cut of the scene with clouds and land, its first 20 rows nodata."""
    image = SCENE[:, 700:850, 128:258].copy()
    image[:, :20] = 0
    return image


def test_resolution_null_gives_the_published_masks(tmp_path, crop):
    clouds = {"detector": {**DETECTOR, "resolution": None}}
    [(mask, prob, tags)] = _stage(tmp_path, [_utm_tile(tmp_path / "a.tif", crop)], clouds)
    ref_prob, ref_mask = _published(crop, DETECTOR)
    np.testing.assert_array_equal(mask, ref_mask)
    np.testing.assert_array_equal(prob, ref_prob)  # NaN on the nodata rows on both
    assert tags["resolution"] == "null" and tags["working_factor"] == "1"


def test_schema_default_resolution_reaches_the_detector(tmp_path, crop):
    assert DETECTOR["resolution"] == 40  # the schema's default
    [(mask, prob, tags)] = _stage(tmp_path, [_utm_tile(tmp_path / "a.tif", crop)])
    assert tags["resolution"] == "40" and tags["working_factor"] == "4"  # 10 m pixels
    ref_prob, ref_mask = _published(crop, DETECTOR)
    valid = ref_mask != MASK_NODATA
    assert (mask == MASK_NODATA).sum() == (~valid).sum() and np.isnan(prob[~valid]).all()
    assert (mask == ref_mask)[valid].mean() >= 0.96  # 0.979 at writing
    assert 0.3 < (mask[valid] == CLOUD).mean() < 0.7  # both clouds and clear land
    assert not np.array_equal(prob[valid], ref_prob[valid])  # evaluated on the coarse grid


def test_dates_of_a_tile_are_detected_in_one_model_call(tmp_path, crop, monkeypatch):
    images = [crop, crop[:, :, ::-1].copy(), crop[:, ::-1].copy()]
    paths = [_utm_tile(tmp_path / f"d{i}.tif", im) for i, im in enumerate(images)]
    calls = []
    made = detector.make_detector

    def counting(settings, threads=None):
        det = made(settings, threads)
        inner = det.get_cloud_probability_maps

        def probability_maps(data):
            calls.append(data.shape)
            return inner(data)

        det.get_cloud_probability_maps = probability_maps
        return det

    monkeypatch.setattr(detector, "make_detector", counting)
    batched = _stage(tmp_path / "all", paths, threads=1)
    assert calls == [(3, 38, 33, 10)]  # 150 x 130 px at factor 4, the model's 10 bands
    for i, path in enumerate(paths):
        [(mask, prob, _)] = _stage(tmp_path / f"one{i}", [path])
        np.testing.assert_array_equal(mask, batched[i][0])
        np.testing.assert_array_equal(prob, batched[i][1])
    # a call holds at most MAX_BATCH_PIXELS working-grid pixels: two dates, then one
    monkeypatch.setattr(detector, "MAX_BATCH_PIXELS", 2 * 38 * 33)
    calls.clear()
    split = _stage(tmp_path / "split", paths)
    assert calls == [(2, 38, 33, 10), (1, 38, 33, 10)]
    for (mask, prob, _), (mask_all, prob_all, _) in zip(split, batched, strict=True):
        np.testing.assert_array_equal(mask, mask_all)
        np.testing.assert_array_equal(prob, prob_all)


def test_threads_reach_the_model():
    det = make_detector(DETECTOR, threads=1)
    assert det._classifier.classifier.threads == 1
    assert make_detector(DETECTOR)._classifier.classifier.threads == detector.default_threads()


def test_a_file_without_crs_names_the_file_and_the_key(tmp_path, crop):
    tr = rasterio.transform.from_origin(0, 0, 10, 10)
    prof = geotiff_profile(crs=None, transform=tr, width=130, height=150, count=13,
                           dtype="uint16", nodata=None)  # fmt: skip
    path = write_raster(tmp_path / "nocrs.tif", crop, prof)
    with pytest.raises(InputDataError, match=r"nocrs\.tif.*clouds\.detector\.resolution: null"):
        masks_for_manifest(pd.DataFrame([_row(path)]), tmp_path, CLOUDS)


def test_detection_logs_progress_over_the_tiles(tmp_path, crop, caplog):
    image = _utm_tile(tmp_path / "a.tif", crop)
    rows = [_row(image, tile=f"t{i}", date="2021-01-01") for i in range(3)]
    with caplog.at_level("INFO", logger="cloudfree.clouds.detector"):
        masks_for_manifest(pd.DataFrame(rows), tmp_path, CLOUDS)
    lines = [r.getMessage() for r in caplog.records if "cloud detection in" in r.getMessage()]
    assert lines[0].startswith(f"cloud detection in {tmp_path}: tiles: 1 of 3 (33 %)")
    assert "ETA" in lines[0] and lines[-1].split(": tiles: ")[1].startswith("3 of 3 (100 %)")
