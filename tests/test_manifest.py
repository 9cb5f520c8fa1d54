import pandas as pd
import pytest

from cloudfree.errors import InputDataError
from cloudfree.manifest import COLUMNS, read_manifest, validate_manifest, write_manifest

from .series import write_series


@pytest.fixture
def manifest(tmp_path):
    return write_series(tmp_path, {"a": "train", "b": "test"}, ["2021-01-05", "2021-02-04"])


def test_roundtrip_sorted(tmp_path, manifest):
    path = write_manifest(manifest.iloc[::-1], tmp_path / "m.csv")
    back = read_manifest(path)
    assert list(back.columns) == list(COLUMNS)
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
