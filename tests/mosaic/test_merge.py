"""The merge kernel: every rule on a hand-computed overlap, the native-dtype accumulator, and
the conversion of merged floats to the output dtype."""

from __future__ import annotations

import numpy as np
import pytest

from cloudfree.errors import ConfigError
from cloudfree.mosaic.merge import NativeAccumulator, combine, to_dtype
from cloudfree.mosaic.rules import RULES

NAN = np.nan
DATES = [20210101, 20210201, 20210301]


def _stack() -> np.ndarray:
    """3 contributions, 1 band, 1 x 5 pixels; pixel 4 gets no contribution."""
    rows = [
        [1.0, 2.0, NAN, 4.0, NAN],
        [5.0, NAN, 3.0, 8.0, NAN],
        [3.0, NAN, NAN, 9.0, NAN],
    ]
    return np.array(rows, dtype=np.float32)[:, None, None, :]


QUALITY = np.array([[2, 1, 1, 3, 1], [1, 1, 1, 2, 1], [1, 1, 1, 1, 1]], np.uint8)[:, None]


@pytest.mark.parametrize(
    ("rule", "expected", "source"),
    [
        ("first", [1, 2, 3, 4, NAN], [1, 1, 2, 1, 0]),
        ("last", [3, 2, 3, 9, NAN], [3, 1, 2, 3, 0]),
        ("mean", [3, 2, 3, 7, NAN], [3, 1, 2, 2, 0]),  # source: closest to the mean
        ("median", [3, 2, 3, 8, NAN], [3, 1, 2, 2, 0]),
        ("max", [5, 2, 3, 9, NAN], [2, 1, 2, 3, 0]),
        ("min", [1, 2, 3, 4, NAN], [1, 1, 2, 1, 0]),
        # observed (2 + score) beats reconstructed (1 + score), then the higher score
        ("best_quality", [3, 2, 3, 9, NAN], [3, 1, 2, 3, 0]),
        ("most_persistent", [5, 2, 3, 9, NAN], [2, 1, 2, 3, 0]),
    ],
)
def test_combine_rules_by_hand(rule: str, expected: list[float], source: list[int]) -> None:
    merged = combine(_stack(), rule, dates=DATES, quality=QUALITY, scores=[0.3, 0.1, 0.2])
    assert merged.value.shape == (1, 1, 5)
    np.testing.assert_array_equal(merged.value[0, 0], np.array(expected, dtype=np.float32))
    np.testing.assert_array_equal(merged.count[0], [3, 1, 1, 3, 0])
    np.testing.assert_array_equal(merged.source[0], source)
    np.testing.assert_array_equal(merged.date[0], [([0, *DATES])[s] for s in source])
    np.testing.assert_array_equal(merged.quality[0], [2, 1, 1, 3, 0])  # worst contribution
    assert merged.count.dtype == np.uint16 and merged.date.dtype == np.uint32


@pytest.mark.parametrize("nodata", [0, 7, 65535])
@pytest.mark.parametrize("rule", ["first", "last", "max", "min"])
def test_native_accumulator_matches_float_kernel(rule: str, nodata: int) -> None:
    """Merging uint16 with a nodata value gives what the float/NaN kernel gives."""
    rng = np.random.default_rng(3)
    stack = rng.integers(1, 12, (4, 3, 6, 7)).astype(np.uint16)  # ties on purpose
    stack[stack == 7] = 8 if nodata == 7 else 7
    stack[rng.random(stack.shape) < 0.3] = nodata  # band holes
    stack[:, :, rng.random((6, 7)) < 0.2] = nodata  # whole-pixel holes
    quality = rng.integers(0, 4, (4, 6, 7)).astype(np.uint8)
    expected = combine(
        np.where(stack == nodata, np.nan, stack.astype(np.float32)), rule, dates=[*DATES, 5],
        quality=quality,
    )  # fmt: skip
    acc = NativeAccumulator(rule, stack.shape[1:], np.uint16, nodata)
    for i in range(4):
        acc.add(stack[i], source=i + 1, date=[*DATES, 5][i], quality=quality[i])
    got = acc.result()
    want = np.where(np.isnan(expected.value), nodata, expected.value).astype(np.uint16)
    np.testing.assert_array_equal(got.value, want)
    for name in ("count", "source", "date", "quality"):
        np.testing.assert_array_equal(getattr(got, name), getattr(expected, name), err_msg=name)


@pytest.mark.parametrize("rule", ["mean", "median", "best_quality", "most_persistent"])
def test_native_accumulator_refuses_rules_that_do_not_pick_per_band(rule: str) -> None:
    with pytest.raises(ValueError, match="float accumulator"):
        NativeAccumulator(rule, (1, 2, 2), np.uint16, 0)


def test_combine_per_band_and_unknown_rule() -> None:
    stack = np.full((2, 2, 1, 1), NAN, dtype=np.float32)
    stack[0, 0], stack[1] = 1.0, 2.0  # contribution 0 has band 0 only
    merged = combine(stack, "first")
    np.testing.assert_array_equal(merged.value[:, 0, 0], [1.0, 2.0])
    assert merged.count[0, 0] == 2 and merged.quality[0, 0] == 255  # no quality: unknown
    assert len(RULES) == 8
    with pytest.raises(ConfigError, match=r"'sum'.*median"):
        combine(stack, "sum")


def test_to_dtype_rounds_clips_and_keeps_contributed_pixels_off_nodata() -> None:
    u16 = np.dtype("uint16")
    merged = np.array([[[0.4, 1.6, NAN, -3.0, 70000.0]]], np.float32)
    # 0.4 rounds and -3 clips onto nodata 0: both move one step up; 70000 clips to the top
    assert to_dtype(merged, u16, 0).tolist() == [[[1, 2, 0, 1, 65535]]]
    top = np.array([[[65535.2, NAN]]], np.float32)
    assert to_dtype(top, u16, 65535).tolist() == [[[65534, 65535]]]  # nodata at the top: down
    assert to_dtype(np.array([[[3.0, NAN]]]), u16, 0, exact=True).tolist() == [[[3, 0]]]
    assert to_dtype(np.array([[[3.0, NAN]]]), u16, None, exact=True).tolist() == [[[3, 0]]]
    floats = to_dtype(np.array([[[0.5, NAN]]], np.float32), np.dtype("float32"), -9999.0)
    assert floats.tolist() == [[[0.5, -9999.0]]]
