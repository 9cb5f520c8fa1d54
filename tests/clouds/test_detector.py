"""Tests of cloudfree.clouds.detector: SCL classes, s2cloudless on the real Betsiboka scene,
bad input."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from cloudfree import bands
from cloudfree.bands import CLEAR, CLOUD, MASK_NODATA, SHADOW, THIN_CLOUD
from cloudfree.clouds.detector import (
    TAGGED_SETTINGS,
    cache_dir,
    compiled_available,
    compiled_forest,
    detect_clouds,
    hash_path,
    l2a_mask,
    masks_for_manifest,
    scl_to_mask,
    verified,
)
from cloudfree.config import section
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.io import geotiff_profile, read_raster, write_raster

# Real L1C scene, CC BY-SA 4.0, contains modified Copernicus Sentinel data; see its README.
BETSIBOKA = Path(__file__).parents[1] / "data" / "s2-l1c-betsiboka"
CLOUDS = section("clouds")
DETECTOR = CLOUDS["detector"]


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
    assert {k: tags[k] for k in TAGGED_SETTINGS} == {k: str(DETECTOR[k]) for k in TAGGED_SETTINGS}


@pytest.mark.skipif(not compiled_available(), reason="lleaves with llvmlite < 0.45 missing")
def test_compiled_and_lightgbm_backends_agree():
    image = read_raster(BETSIBOKA / "S2L1C_13band_betsiboka.tif")[0][:, 300:428, 200:328]
    p_fast, m_fast = detect_clouds(image, {**DETECTOR, "backend": "compiled"})
    p_ref, m_ref = detect_clouds(image, {**DETECTOR, "backend": "lightgbm"})
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
