"""Tests of cloudfree.pack.dates: date classes from the cloud statistics or the masks; the
held-out period."""

import numpy as np
import pandas as pd
import pytest
from affine import Affine
from rasterio.crs import CRS

from cloudfree.bands import CLEAR, CLOUD, MASK_NODATA, SHADOW, THIN_CLOUD
from cloudfree.errors import InputDataError
from cloudfree.io import read_raster
from cloudfree.pack.dates import (
    class_lookup,
    classes_from_clear_share,
    classes_from_table,
    read_date_stats,
    without_holdout,
)
from cloudfree.packed import TileSeries, iter_tiles

from .sample import DATES, pack


def _tile(masks: np.ndarray, s2: np.ndarray | None = None) -> TileSeries:
    t = masks.shape[0]
    if s2 is None:
        s2 = np.full((t, 2, *masks.shape[1:]), 500, np.uint16)
    return TileSeries(
        tile="x", split="train", s2=s2, mask=masks, dates=DATES[:t],
        doy=np.arange(t, dtype=np.int16), crs=CRS.from_epsg(32632), transform=Affine.identity(),
    )  # fmt: skip


def test_classes_from_clear_share_by_hand():
    masks = np.zeros((6, 2, 10), np.uint8)  # 20 pixels per date
    masks[1, 0, :5] = CLOUD  # 15 / 20 clear: 0.75
    masks[2, 0, :] = THIN_CLOUD  # 10 / 20 clear: 0.5
    masks[3, :, :9] = SHADOW  # 2 / 20 clear: 0.1
    masks[4] = MASK_NODATA  # no valid pixel
    masks[5, 0, :4] = CLOUD  # 16 / 20 clear, but row 1 has no data:
    s2 = np.full((6, 2, 2, 10), 500, np.uint16)
    s2[5, :, 1] = 0  # no band has data in row 1: 6 / 10 valid pixels clear
    got = classes_from_clear_share(_tile(masks, s2), clear_min=0.75, usable_min=0.1)
    assert got.dtype == np.uint8
    #                  clear, clear, impaired, impaired (0.1 is not < 0.1), unusable, impaired
    assert got.tolist() == [0, 0, 1, 1, 2, 1]
    stricter = classes_from_clear_share(_tile(masks, s2), clear_min=0.8, usable_min=0.15)
    assert stricter.tolist() == [0, 1, 1, 2, 2, 1]


def test_pack_classifies_from_the_raw_masks_without_a_table(tmp_path, manifest):
    dest = pack(manifest, tmp_path / "r.h5", {"clear_min": 0.7, "usable_min": 0.1})
    tiles = {t.tile: t for t in iter_tiles(dest)}
    for name, rows in manifest.groupby("tile"):
        expect = []
        for row in rows.sort_values("date").itertuples():
            img, _ = read_raster(row.image)
            mask = read_raster(row.mask)[0][0]
            valid = (img != 0).any(axis=0) & (mask != MASK_NODATA)
            share = (valid & (mask == CLEAR)).sum() / valid.sum()
            expect.append(0 if share >= 0.7 else 2 if share < 0.1 else 1)
        assert tiles[name].date_class.tolist() == expect, name
    # the hand-made masks: an 8 x 8 cloud square and a shadow row over 16 x 16 px, the square
    # on the shadow row (184 clear pixels) only on the first date (176 after)
    assert tiles["a"].date_class.tolist() == [0, 1, 1, 1]


def _stats(tmp_path, rows: dict[str, list]) -> str:
    path = tmp_path / "dates.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def test_date_stats_table_round_trip(tmp_path):
    path = _stats(tmp_path, {"tile": ["x", "x"], "date": DATES[:2], "class": ["impaired", "clear"]})
    table = read_date_stats(path)
    assert table.attrs["path"] == path
    tile = _tile(np.zeros((2, 1, 1), np.uint8))
    assert classes_from_table(class_lookup(table), tile, "t.csv").tolist() == [1, 0]
    with pytest.raises(InputDataError, match=rf"t\.csv: no row for tile x, date {DATES[2]}"):
        classes_from_table(class_lookup(table), _tile(np.zeros((3, 1, 1), np.uint8)), "t.csv")


def test_bad_date_stats_tables_are_named(tmp_path):
    path = _stats(tmp_path, {"tile": ["x"], "date": [DATES[0]]})
    with pytest.raises(InputDataError, match=r"dates\.csv: missing columns \['class'\]"):
        read_date_stats(path)
    path = _stats(tmp_path, {"tile": ["x"], "date": [DATES[0]], "class": ["cloudy"]})
    with pytest.raises(InputDataError, match=r"unknown date classes \['cloudy'\]"):
        read_date_stats(path)
    with pytest.raises(InputDataError, match="cannot read cloud statistics"):
        read_date_stats(tmp_path / "absent.csv")


def test_without_holdout_keeps_the_period_for_test_tiles_only():
    rows = [
        (tile, split, date)
        for tile, split in (("a", "train"), ("c", "val"), ("d", "test"))
        for date in ("2021-03-31", "2021-04-01", "2021-05-15", "2021-06-30", "2021-07-01")
    ]
    manifest = pd.DataFrame(rows, columns=["tile", "split", "date"])
    summer = {"start": "2021-04-01", "end": "2021-06-30"}  # both ends included
    out = without_holdout(manifest, summer)
    kept = out.groupby("tile")["date"].apply(list).to_dict()
    assert kept == {
        "a": ["2021-03-31", "2021-07-01"],
        "c": ["2021-03-31", "2021-07-01"],
        "d": ["2021-03-31", "2021-04-01", "2021-05-15", "2021-06-30", "2021-07-01"],
    }
    assert list(out.columns) == ["tile", "split", "date"]
    assert without_holdout(manifest, None) is manifest
    # dates as date objects (a YAML config gives them so)
    dated = manifest.assign(date=pd.to_datetime(manifest["date"]).dt.date)
    assert len(without_holdout(dated, summer)) == len(out)
