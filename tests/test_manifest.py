import pandas as pd
import pytest
from affine import Affine
from rasterio.crs import CRS

from cloudfree.errors import InputDataError
from cloudfree.manifest import (
    COLUMNS,
    OPTIONAL_COLUMNS,
    manifest_row,
    normalize_manifest,
    read_manifest,
    validate_manifest,
    write_manifest,
)
from cloudfree.tiles.grid import Grid

from .series import write_series


@pytest.fixture
def manifest(tmp_path):
    return write_series(tmp_path, {"a": "train", "b": "test"}, ["2021-01-05", "2021-02-04"])


def test_roundtrip_sorted(tmp_path, manifest):
    path = write_manifest(manifest.iloc[::-1], tmp_path / "m.csv")
    back = read_manifest(path)
    assert list(back.columns) == [*COLUMNS, *OPTIONAL_COLUMNS]
    assert (back["probability"] == "").all() and (back["s1"] == "").all()
    assert list(back["tile"]) == ["a", "a", "b", "b"]
    assert list(back["date"]) == ["2021-01-05", "2021-02-04"] * 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tile": "../evil"}, "tile id"),
        ({"date": "05/01/2021"}, "YYYY-MM-DD"),
        ({"split": "holdout"}, "unknown split"),
    ],
)
def test_bad_rows_are_named(manifest, change, message):
    bad = manifest.copy()
    for col, value in change.items():
        bad.loc[0, col] = value
    with pytest.raises(InputDataError, match=message):
        validate_manifest(bad)


def test_duplicate_date_and_mixed_split(manifest):
    dup = pd.concat([manifest, manifest.iloc[[0]]])
    with pytest.raises(InputDataError, match="twice"):
        validate_manifest(dup)
    mixed = manifest.copy()
    mixed.loc[1, "split"] = "val"
    with pytest.raises(InputDataError, match="more than one split"):
        validate_manifest(mixed)


def test_optional_paths_roundtrip(tmp_path, manifest):
    with_paths = manifest.assign(probability="p.tif", s1="")
    back = read_manifest(write_manifest(with_paths, tmp_path / "m.csv"))
    assert list(back["probability"]) == ["p.tif"] * 4 and list(back["s1"]) == [""] * 4


def test_missing_mask_is_refused_unless_allowed(tmp_path, manifest):
    no_mask = manifest.assign(mask="")
    with pytest.raises(InputDataError, match="has no cloud mask"):
        write_manifest(no_mask, tmp_path / "m.csv")
    assert not (tmp_path / "m.csv").exists()
    assert len(validate_manifest(no_mask, require_masks=False)) == 4


def test_a_row_fills_every_column_from_the_tile_footprint():
    grid = Grid(CRS.from_epsg(32737), Affine(10.0, 0.0, 500480.0, 0.0, -10.0, 8299520.0), 64, 32)
    row = manifest_row("r", "folder", "r1c2", "2021-03-02", "val", grid, image="a.tif", s1="s.tif")
    assert set(row) == {*COLUMNS, *OPTIONAL_COLUMNS}
    assert row == {
        "region": "r", "source": "folder", "tile": "r1c2", "date": "2021-03-02", "split": "val",
        "image": "a.tif", "mask": "", "probability": "", "s1": "s.tif", "acquisitions": "",
        "merge": "", "crs": "EPSG:32737", "left": 500480.0, "bottom": 8299200.0,
        "right": 501120.0, "top": 8299520.0, "width": 64, "height": 32,
    }  # fmt: skip
    out = normalize_manifest(pd.DataFrame([{**row, "mask": "m.tif"}]))
    assert list(out.columns) == [*COLUMNS, *OPTIONAL_COLUMNS] and out.at[0, "s1"] == "s.tif"


def test_the_merge_of_a_date_is_written_and_read(tmp_path, manifest):
    merged = manifest.assign(acquisitions="", merge="")
    merged.loc[0, ["acquisitions", "merge"]] = ["in/T32TQM_x.tif;in/T32TQL_x.tif", "least_cloudy"]
    merged.loc[1, "acquisitions"] = "in/T32TQM_y.tif"
    back = read_manifest(write_manifest(merged, tmp_path / "m.csv"))
    assert list(back.columns) == [*COLUMNS, *OPTIONAL_COLUMNS]
    row = back.set_index(["tile", "date"]).loc[("a", "2021-01-05")]
    assert row["acquisitions"].split(";") == ["in/T32TQM_x.tif", "in/T32TQL_x.tif"]
    assert row["merge"] == "least_cloudy"
    assert list(back["acquisitions"])[1:] == ["in/T32TQM_y.tif", "", ""]
    assert list(back["merge"])[1:] == ["", "", ""]
    bad = merged.assign(merge="average")
    with pytest.raises(InputDataError, match=r"unknown merge values \['average'\]"):
        validate_manifest(bad)


def test_a_manifest_written_before_the_merge_columns_reads(tmp_path, manifest):
    old = tmp_path / "old.csv"
    manifest.assign(probability="", s1="")[[*COLUMNS, "probability", "s1"]].to_csv(old, index=False)
    assert "acquisitions" not in old.read_text()
    back = read_manifest(old)
    assert list(back.columns) == [*COLUMNS, *OPTIONAL_COLUMNS]
    assert (back["acquisitions"] == "").all() and (back["merge"] == "").all()
