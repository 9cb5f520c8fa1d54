"""Tests of cloudfree.tiles.region: the tile stage's staging folder, manifest and dispatch."""

import numpy as np
import pytest
import rasterio

from cloudfree.bands import MASK_CLASSES, MASK_NODATA, S2_L1C_BANDS
from cloudfree.config import schema, source_settings
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.manifest import read_manifest
from cloudfree.tiles.region import SOURCES, download_tiles
from cloudfree.tiles.settings import TILES_STAMP, manifest_stamp_path, read_stamp

SMALL = {
    "source": "synthetic",
    "synthetic": source_settings(
        "synthetic",
        {"seed": 5, "tiles_x": 3, "tiles_y": 1, "tile_size": 32, "overlap": 8, "n_dates": 3},
    ),
}


def test_synthetic_tiles_land_in_place_with_their_manifest(tmp_path):
    tiles_dir, manifest_csv = tmp_path / "resources/tiles/r", tmp_path / "results/tiles/r.csv"
    manifest = download_tiles("r", SMALL, tiles_dir, manifest_csv, {})
    assert read_manifest(manifest_csv).equals(manifest)
    assert len(manifest) == 9 and set(manifest["split"]) == {"train", "val", "test"}
    for path in [*manifest["image"], *manifest["mask"]]:
        assert path.startswith(str(tiles_dir))
    for path in manifest["image"]:  # the region's bands: all 13 for synthetic
        with rasterio.open(path) as src:
            assert src.count == len(S2_L1C_BANDS) == 13 and src.dtypes == ("uint16",) * 13
            assert src.descriptions == S2_L1C_BANDS
    for path in manifest["mask"]:  # one band of cloud-mask classes
        with rasterio.open(path) as src:
            assert src.count == 1 and src.dtypes == ("uint8",) and src.nodata == MASK_NODATA
            classes = set(np.unique(src.read(1)).tolist())
        assert classes <= {*MASK_CLASSES.values(), MASK_NODATA}
    # nothing but the final folder: the temporary one was moved into place
    assert [p.name for p in tiles_dir.parent.iterdir()] == ["r"]


def test_unknown_source_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"regions\.r\.source"):
        download_tiles("r", {"source": "ftp"}, tmp_path / "t", tmp_path / "m.csv", {})
    assert not (tmp_path / "t").exists() and not (tmp_path / "m.csv").exists()


def test_a_missing_source_section_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"regions\.r\.folder: section missing"):
        download_tiles("r", {"source": "folder"}, tmp_path / "t", tmp_path / "m.csv", {})
    assert not (tmp_path / "t").exists() and not (tmp_path / "m.csv").exists()


def test_sources_are_the_schemas():
    enum = schema()["properties"]["regions"]["additionalProperties"]["properties"]["source"]
    assert sorted(SOURCES) == sorted(enum["enum"])


def test_the_tile_folder_and_the_manifest_carry_the_same_download_stamp(tmp_path):
    tiles_dir, manifest_csv = tmp_path / "resources/tiles/r", tmp_path / "results/tiles/r.csv"
    download_tiles("r", SMALL, tiles_dir, manifest_csv, {})
    folder = read_stamp(tiles_dir / TILES_STAMP)
    beside = read_stamp(manifest_stamp_path(manifest_csv))
    assert manifest_stamp_path(manifest_csv) == tmp_path / "results/tiles/r.download.json"
    assert folder == beside and folder["tiles"] == str(tiles_dir) and folder["region"] == "r"
    again = download_tiles("r", SMALL, tiles_dir, manifest_csv, {})
    second = read_stamp(tiles_dir / TILES_STAMP)
    assert second["settings"] == folder["settings"] and second["download"] != folder["download"]
    assert read_stamp(manifest_stamp_path(manifest_csv)) == second and len(again) == 9
    other = {**SMALL, "synthetic": {**SMALL["synthetic"], "cloudiness": 0.1}}
    download_tiles("r", other, tiles_dir, manifest_csv, {})
    assert read_stamp(tiles_dir / TILES_STAMP)["settings"] != folder["settings"]


def test_a_stamp_that_is_not_one_is_named(tmp_path):
    assert read_stamp(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text('{"region": "r"}')
    with pytest.raises(InputDataError, match=r"bad\.json: not a download stamp"):
        read_stamp(tmp_path / "bad.json")
