"""Property-based tests of the tile-source parsers and tilers: dates read from file names,
SEN12MS-CR-TS names, tile windows and spatial-block splits."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from cloudfree.errors import InputDataError
from cloudfree.tiles.folder import parse_date
from cloudfree.tiles.grid import block_splits, tile_windows
from cloudfree.tiles.sen12mscrts import parse_name

pytestmark = pytest.mark.reliability

dates = st.dates(min_value=dt.date(1984, 1, 1), max_value=dt.date(2099, 12, 31))
words = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)

COMPACT = r"_(\d{8})_"
ISO = r"(\d{4}-\d{2}-\d{2})"


@settings(max_examples=200, deadline=None)
@given(dates, words, words, st.sampled_from(["compact", "iso"]))
def test_a_date_in_a_file_name_is_read_back_exactly(day, prefix, suffix, style):
    text = day.strftime("%Y%m%d") if style == "compact" else day.isoformat()
    regex = COMPACT if style == "compact" else ISO
    name = f"/data/{prefix}_{text}_{suffix}.tif"
    assert parse_date(name, regex) == day.isoformat()


@settings(max_examples=100, deadline=None)
@given(words, words)
def test_a_name_without_a_date_is_an_error_naming_the_file(prefix, suffix):
    name = f"/data/{prefix}_{suffix}.tif"
    with pytest.raises(InputDataError, match="no date in the file name") as err:
        parse_date(name, COMPACT)
    assert name in str(err.value)


def _impossible(month: int, day: int) -> bool:
    try:
        dt.date(2021, month, day)
    except ValueError:
        return True
    return False


IMPOSSIBLE = [(m, d) for m in range(100) for d in range(100) if _impossible(m, d)]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(IMPOSSIBLE), words)
def test_an_impossible_date_is_refused(month_day, prefix):
    month, day = month_day
    with pytest.raises(InputDataError, match="not a date"):
        parse_date(f"{prefix}_2021{month:02d}{day:02d}_x.tif", COMPACT)


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["s1", "s2"]), st.sampled_from([1158, 1868, 1970, 2017]),
    st.integers(0, 999), st.integers(0, 29), dates, st.integers(0, 9999),
)  # fmt: skip
def test_sen12mscrts_names_round_trip(mod, rois, roi, t, day, patch):
    name = f"{mod}_ROIs{rois}_{roi}_ImgNo_{t}_{day.isoformat()}_patch_{patch}.tif"
    parts = parse_name(Path("/x") / name)
    assert parts["mod"] == mod and parts["rois"] == f"ROIs{rois}" and parts["roi"] == str(roi)
    assert (parts["t"], parts["date"], parts["patch"]) == (t, day.isoformat(), patch)
    with pytest.raises(InputDataError, match="not a SEN12MS-CR-TS file name"):
        parse_name(Path("/x") / name.replace("_patch_", "_p_"))


@settings(max_examples=200, deadline=None)
@given(st.integers(16, 400), st.integers(16, 400), st.integers(8, 128), st.data())
def test_tile_windows_cover_every_pixel_with_whole_tiles(width, height, size, data):
    assume(size <= min(width, height))
    overlap = data.draw(st.integers(0, size - 1))
    windows = tile_windows(width, height, size, overlap)
    covered_x, covered_y = set(), set()
    for w in windows.values():
        assert (w.width, w.height) == (size, size)
        assert 0 <= w.col_off <= width - size and 0 <= w.row_off <= height - size
        covered_x.update(range(int(w.col_off), int(w.col_off) + size))
        covered_y.update(range(int(w.row_off), int(w.row_off) + size))
    assert covered_x == set(range(width)) and covered_y == set(range(height))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 8), st.integers(1, 8), st.integers(1, 3), st.integers(0, 10_000))
def test_block_splits_keep_each_block_in_one_split(cols, rows, block, seed):
    size = 10
    windows = tile_windows(cols * size, rows * size, size, 0)
    splits = block_splits(windows, block=block, val_fraction=0.2, test_fraction=0.2, seed=seed)
    assert set(splits) == set(windows)
    by_block: dict[tuple[int, int], set[str]] = {}
    for tile, w in windows.items():
        key = (int(w.row_off) // size // block, int(w.col_off) // size // block)
        by_block.setdefault(key, set()).add(splits[tile])
    assert all(len(s) == 1 for s in by_block.values())
    if len(by_block) >= 3:
        assert set(splits.values()) == {"train", "val", "test"}
