"""Property-based tests of the manifest contract: order, duplicates and names."""

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudfree.errors import InputDataError
from cloudfree.manifest import TILE_ID, validate_manifest

pytestmark = pytest.mark.reliability

tile_ids = st.from_regex(TILE_ID, fullmatch=True).filter(lambda s: len(s) <= 20)
dates = st.dates(
    min_value=pd.Timestamp("2015-06-23").date(), max_value=pd.Timestamp("2030-12-31").date()
)


def row(tile: str, date: str, split: str) -> dict:
    return {
        "region": "r", "source": "folder", "tile": tile, "date": date, "split": split,
        "image": f"{tile}/{date}.tif", "mask": f"{tile}/{date}_mask.tif", "crs": "EPSG:32632",
        "left": 0.0, "bottom": 0.0, "right": 10.0, "top": 10.0, "width": 1, "height": 1,
    }  # fmt: skip


@st.composite
def manifests(draw):
    tiles = draw(st.lists(tile_ids, min_size=1, max_size=5, unique=True))
    rows = []
    for tile in tiles:
        split = draw(st.sampled_from(["train", "val", "test"]))
        for date in draw(st.lists(dates, min_size=1, max_size=6, unique=True)):
            rows.append(row(tile, date.isoformat(), split))
    return pd.DataFrame(draw(st.permutations(rows)))


@settings(max_examples=100, deadline=None)
@given(manifests())
def test_any_valid_manifest_comes_back_sorted_by_tile_and_date(df):
    out = validate_manifest(df)
    assert len(out) == len(df)
    keys = list(zip(out["tile"], out["date"], strict=True))
    assert keys == sorted(keys)


@settings(max_examples=100, deadline=None)
@given(manifests(), st.data())
def test_a_duplicated_tile_and_date_is_refused_and_named(df, data):
    dup = df.iloc[[data.draw(st.integers(0, len(df) - 1))]]
    with pytest.raises(InputDataError, match="twice") as err:
        validate_manifest(pd.concat([df, dup], ignore_index=True))
    assert str(dup["tile"].iloc[0]) in str(err.value)
    assert str(dup["date"].iloc[0]) in str(err.value)


@settings(max_examples=100, deadline=None)
@given(manifests(), st.text(min_size=1, max_size=12))
def test_a_tile_id_outside_the_pattern_is_refused(df, bad):
    if TILE_ID.match(bad):
        return
    df = df.assign(tile=df["tile"].where(df.index != 0, bad))
    with pytest.raises(InputDataError):
        validate_manifest(df)
