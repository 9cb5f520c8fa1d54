"""Tests of cloudfree.tiles.same_date and of the ``folder`` source with several acquisitions of
one date: merge order, per-pixel first valid fill, the merged mask, the manifest columns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from cloudfree.bands import MASK_NODATA
from cloudfree.config import source_settings
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.manifest import read_manifest
from cloudfree.preflight import resolve_workflow_config
from cloudfree.tiles.folder import FolderSpec, acquisitions_by_date, files_by_date
from cloudfree.tiles.folder_checks import check_strip_memory
from cloudfree.tiles.grid import tile_strips, tile_windows
from cloudfree.tiles.same_date import (
    Layers,
    check_same_date,
    cloud_fraction,
    first_valid,
    merge,
    merge_order,
    merge_record,
)
from cloudfree.tiles.stac import StacSpec

from ..workflow_run import REPO
from .test_folder import folder_cfg, run, write_tif

CLEAR, CLOUD = 0, 1


def test_least_cloudy_orders_by_the_cloud_over_valid_pixels_then_by_name():
    valid = np.ones((2, 4), bool)
    half = np.array([[1, 1, 0, 0]] * 2, np.uint8)
    quarter = np.array([[1, 0, 0, 0]] * 2, np.uint8)
    masks = [half, quarter, quarter.copy()]
    assert merge_order(masks, [valid] * 3, "least_cloudy") == [1, 2, 0]  # ties: given order
    assert merge_order(masks, [valid] * 3, "first") == [0, 1, 2]
    # the cloud counts over the acquisition's own valid pixels: half of it is nodata
    partial = np.array([[1, 1, 0, 0]] * 2, bool)
    assert cloud_fraction(np.zeros((2, 4), np.uint8), partial) == 0.0
    assert cloud_fraction(half, partial) == 1.0
    # no valid pixel on the tile: last, whatever the rule
    none = np.zeros((2, 4), bool)
    assert merge_order([quarter, half], [none, valid], "least_cloudy") == [1, 0]
    assert merge_order([quarter, half], [none, valid], "first") == [1, 0]
    # without masks (detection after the tile stage): name order
    assert merge_order([None, None], [valid, valid], "least_cloudy") == [0, 1]


def test_each_pixel_takes_the_first_clear_acquisition_else_the_first_valid():
    valid = np.ones((1, 4), bool)
    masks = [np.array([[CLOUD, CLEAR, CLOUD, CLOUD]], np.uint8),
             np.array([[CLEAR, CLOUD, CLOUD, MASK_NODATA]], np.uint8)]  # fmt: skip
    valids = [valid, np.array([[True, True, True, False]])]
    choice = first_valid([0, 1], masks, valids)
    assert choice.tolist() == [[1, 0, 0, 0]]  # both cloudy at 2: the first in order
    assert first_valid([1, 0], masks, valids).tolist() == [[1, 0, 1, 0]]
    nothing = first_valid([0], [masks[0]], [np.zeros((1, 4), bool)])
    assert nothing.tolist() == [[-1, -1, -1, -1]]


def test_a_merged_date_keeps_dtype_nodata_and_is_cloud_only_where_no_acquisition_is_clear():
    a = Layers(
        image=np.array([[[10, 11, 12, 0]]], np.uint16),
        mask=np.array([[CLOUD, CLEAR, CLOUD, MASK_NODATA]], np.uint8),
        probability=np.array([[0.9, 0.1, 0.8, np.nan]], np.float32),
        valid=np.array([[True, True, True, False]]),
    )
    b = Layers(
        image=np.array([[[20, 21, 22, 0]]], np.uint16),
        mask=np.array([[CLEAR, CLEAR, CLOUD, MASK_NODATA]], np.uint8),
        probability=np.array([[0.2, 0.3, 0.7, np.nan]], np.float32),
        valid=np.array([[True, True, True, False]]),
    )
    date, taken = merge([a, b], "first", 0)
    assert date.image.dtype == np.uint16 and date.image.tolist() == [[[20, 11, 12, 0]]]
    assert date.mask.tolist() == [[CLEAR, CLEAR, CLOUD, MASK_NODATA]]
    np.testing.assert_allclose(date.probability, [[0.2, 0.1, 0.8, np.nan]])
    assert date.valid.tolist() == [[True, True, True, False]] and taken == [0, 1]
    # least cloudy first: b (1 of 3 cloudy) before a (2 of 3); a then gives no pixel and is
    # not recorded
    date, taken = merge([a, b], "least_cloudy", 0)
    assert taken == [1] and date.image.tolist() == [[[20, 21, 22, 0]]]
    assert date.mask.tolist() == [[CLEAR, CLEAR, CLOUD, MASK_NODATA]]
    # without a probability in one of them, the merged date has none
    date, taken = merge([a, Layers(b.image, b.mask, None, b.valid)], "first", 0)
    assert taken == [0, 1] and date.probability is None


def test_the_merge_record_names_the_acquisitions_in_merge_order():
    assert merge_record(["b.tif", "a.tif"], "least_cloudy") == {
        "acquisitions": "b.tif;a.tif",
        "merge": "least_cloudy",
    }
    assert merge_record(["a.tif"], "first") == {"acquisitions": "a.tif", "merge": ""}


def test_separate_is_a_clear_config_error():
    assert check_same_date("first", "regions.r.folder") == "first"
    with pytest.raises(ConfigError, match=r"regions\.r\.folder\.same_date: separate .* calendar"):
        check_same_date("separate", "regions.r.folder")
    with pytest.raises(ConfigError, match=r"same_date: 'mean' is not one of"):
        check_same_date("mean", "folder")
    cfg = folder_cfg(Path("x"), same_date="separate")  # in the schema's enum: the spec refuses
    with pytest.raises(ConfigError, match=r"regions\.r\.folder\.same_date: separate"):
        FolderSpec.from_dict(cfg, "regions.r.folder")


def test_the_workflow_refuses_separate_before_the_first_job(tmp_path):
    region = {"source": "folder", "folder": {"images": "x/*.tif", "same_date": "separate"}}
    with pytest.raises(ConfigError, match=r"regions\.site\.folder\.same_date: separate"):
        resolve_workflow_config({"base": "default", "regions": {"site": region}})


def write_same_date(root: Path, *, float_second: bool = False) -> Path:
    """Date 2021-01-05 in two acquisitions of 64 x 64 px (4 bands): ``_1`` is DN 7777 with
    nodata beyond column 48, cloud on rows 16-32 (left half) and in the 4 x 4 px corner;
    ``_2`` random DN, cloud on the 16 x 16 px corner.  Date 2021-02-10 is one clear file."""
    rng = np.random.default_rng(1)
    one = np.full((4, 64, 64), 7777, np.float32 if float_second else np.uint16)
    one[:, :, 48:] = 0
    m1 = np.zeros((64, 64), np.uint8)
    m1[16:32, :32] = CLOUD
    m1[:4, :4] = CLOUD
    two = rng.integers(500, 4000, size=(4, 64, 64), dtype=np.uint16)
    m2 = np.zeros((64, 64), np.uint8)
    m2[:16, :16] = CLOUD
    write_tif(root / "img" / "S2_20210105_1.tif", one)
    write_tif(root / "img" / "S2_20210105_2.tif", two)
    write_tif(root / "img" / "S2_20210210_1.tif", two[::-1].copy())
    write_tif(root / "cld" / "CLD_20210105_1.tif", m1, nodata=255)
    write_tif(root / "cld" / "CLD_20210105_2.tif", m2, nodata=255)
    write_tif(root / "cld" / "CLD_20210210_1.tif", np.zeros((64, 64), np.uint8), nodata=255)
    return root


def same_date_cfg(root: Path, **extra) -> dict:
    return folder_cfg(root, bands=["B02", "B03", "B04", "B08"], val_fraction=0.25,
                      test_fraction=0.25, **extra)  # fmt: skip


def _tile(manifest, tile: str, iso: str):
    row = manifest.set_index(["tile", "date"]).loc[(tile, iso)]
    with rasterio.open(row["image"]) as img, rasterio.open(row["mask"]) as msk:
        return row, img.read(), msk.read(1), img.tags()


@pytest.mark.parametrize("rule", ["least_cloudy", "first"])
def test_a_folder_date_of_two_acquisitions_is_merged_on_each_tile(tmp_path, rule, caplog):
    root = write_same_date(tmp_path / "data")
    tiles, csv = tmp_path / "tiles/f", tmp_path / "f.csv"
    caplog.set_level("INFO", logger="cloudfree.tiles.same_date")
    manifest = run(same_date_cfg(root, same_date=rule), tiles, csv)
    assert read_manifest(csv).equals(manifest)
    assert sorted(manifest["date"].unique()) == ["2021-01-05", "2021-02-10"]
    one, two = (str(root / "img" / f"S2_20210105_{i}.tif") for i in (1, 2))
    row, dn, mask, tags = _tile(manifest, "r0c0", "2021-01-05")
    # least cloudy on r0c0: _2 (a quarter cloudy) before _1 (more than half); first: _1, _2
    order = [two, one] if rule == "least_cloudy" else [one, two]
    assert row["acquisitions"].split(";") == order and row["merge"] == rule
    assert tags["SOURCE_FILE"] == row["acquisitions"] and tags["SAME_DATE"] == rule
    assert (dn[:, 8, 8] == 7777).all() and mask[8, 8] == CLEAR  # cloud in _2, clear in _1
    assert (dn[:, 20, 20] != 7777).all() and mask[20, 20] == CLEAR  # cloud in _1, clear in _2
    assert mask[2, 2] == CLOUD  # cloudy in both: cloud, from the first in the order
    assert ((dn[:, 2, 2] == 7777).all()) == (rule == "first")
    assert ((dn[:, 8, 24] == 7777).all()) == (rule == "first")  # clear in both
    assert dn.dtype == np.uint16 and (mask != MASK_NODATA).all()
    # r0c1: _1 is valid on columns 32-48 only and clear there, as _2: a tie, file order
    row, dn, mask, _ = _tile(manifest, "r0c1", "2021-01-05")
    assert row["acquisitions"].split(";") == [one, two] and row["merge"] == rule
    assert (dn[:, :, :16] == 7777).all() and (dn[:, :, 16:] != 7777).all()
    assert (mask == CLEAR).all()
    single = manifest[manifest["date"] == "2021-02-10"]
    assert set(single["acquisitions"]) == {str(root / "img" / "S2_20210210_1.tif")}
    assert set(single["merge"]) == {""}
    lines = [r.getMessage() for r in caplog.records if "merged from 2" in r.getMessage()]
    assert any("tile r0c0, date 2021-01-05" in line and one in line for line in lines)


def test_the_files_of_one_date_are_checked_against_each_other(tmp_path):
    root = write_same_date(tmp_path / "data")
    (root / "cld" / "CLD_20210105_2.tif").unlink()
    with pytest.raises(InputDataError, match=r"date 2021-01-05: 2 image files \(.*_1\.tif, .*_2"
                       r"\.tif\) but 1 regions\.f\.folder\.masks files"):  # fmt: skip
        run(same_date_cfg(root), tmp_path / "t/f", tmp_path / "f.csv")
    root = write_same_date(tmp_path / "floats", float_second=True)
    with pytest.raises(InputDataError, match=r"_2\.tif and .*_1\.tif: both date 2021-01-05, but "
                       "uint16 and float32 pixels"):  # fmt: skip
        run(same_date_cfg(root), tmp_path / "t2/f", tmp_path / "f2.csv")
    write_tif(root / "img" / "S2_20210105_2.tif", np.ones((3, 64, 64), np.uint16))
    with pytest.raises(InputDataError, match=r"_2\.tif \(date 2021-01-05\): 3 bands.*the other "
                       r"acquisitions of date 2021-01-05: .*_1\.tif"):  # fmt: skip
        run(same_date_cfg(root), tmp_path / "t3/f", tmp_path / "f3.csv")


def test_one_file_matched_twice_is_refused(tmp_path):
    root = write_same_date(tmp_path / "data")
    os.symlink(root / "img" / "S2_20210105_1.tif", root / "img" / "S2_20210105_3.tif")
    with pytest.raises(InputDataError, match=r"S2_20210105_3\.tif: the same file as .*_1\.tif"):
        acquisitions_by_date(str(root / "img" / "*.tif"), r"_(\d{8})", "images")
    twice = str(root / "img" / "**" / "S2_20210210_1.tif")  # ** matches the folder itself too
    found = acquisitions_by_date(twice, r"_(\d{8})", "images")
    assert found == {"2021-02-10": [str(root / "img" / "S2_20210210_1.tif")]}
    # one file a date where only one makes sense (Sentinel-1): both named
    (root / "img" / "S2_20210105_3.tif").unlink()
    with pytest.raises(InputDataError, match=r"_2\.tif: date 2021-01-05 is also in .*_1\.tif"):
        files_by_date(str(root / "img" / "*.tif"), r"_(\d{8})", "s1")


def test_the_tiles_package_imports_without_pystac_client():
    """Without the stac extra, the folder and synthetic sources and the config checks import;
    the stac source says which extra it needs when it runs."""
    code = """
import sys
sys.modules["pystac_client"] = None
import cloudfree.preflight
from cloudfree.extras import MissingExtraError
from cloudfree.tiles.region import SOURCES
try:
    SOURCES["stac"]("r", {}, None)
except MissingExtraError as exc:
    print("refused:", exc)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True)  # fmt: skip
    assert "refused: pystac_client is not installed" in out.stdout
    assert "cloudfree[stac]" in out.stdout


def test_stac_same_date_is_checked():
    cfg = source_settings("stac", {
        "url": "http://x", "bbox": [9, 45, 9.01, 45.01], "start": "2021-01-01",
        "end": "2021-01-02", "crs": "EPSG:32632", "same_date": "separate",
    })  # fmt: skip
    with pytest.raises(ConfigError, match=r"regions\.s\.stac\.same_date: separate"):
        StacSpec.from_dict(cfg, "regions.s.stac")
    assert StacSpec.from_dict({**cfg, "same_date": "first"}).same_date == "first"
    assert source_settings("folder", {"images": "x"})["same_date"] == "least_cloudy"


def test_the_memory_check_counts_every_acquisition_of_a_date():
    """A row of 10 tiles of 1000 px, 13 bands: 2.72 GB for one acquisition; each further
    one keeps 1000 x 10000 px x (13 x 2 + 6) bytes (0.32 GB) more until the merge."""
    spec = FolderSpec.from_dict(folder_cfg(Path("x"), max_memory_gb=3.5))
    strips = tile_strips(tile_windows(10_000, 1000, 1000, 0))
    check_strip_memory(strips, spec, "r", "regions.r.folder", 1)
    check_strip_memory(strips, spec, "r", "regions.r.folder", 3)  # 3.36 GB
    with pytest.raises(ConfigError, match=r"13 bands, 4 acquisitions of one date\) would need "
                       r"about 3\.7 GB.*regions\.r\.folder\.max_memory_gb"):  # fmt: skip
        check_strip_memory(strips, spec, "r", "regions.r.folder", 4)
