import pandas as pd
import pytest

from cloudfree.errors import InputDataError
from cloudfree.manifest import (
    COLUMNS,
    OPTIONAL_COLUMNS,
    read_manifest,
    validate_manifest,
    write_manifest,
)

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
