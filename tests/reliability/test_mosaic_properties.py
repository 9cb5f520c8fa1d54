"""Property-based tests of the mosaic kernel and the inference blending weights."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cloudfree.infer.blend import blend, window_length, window_starts, window_weights
from cloudfree.mosaic.merge import combine

pytestmark = pytest.mark.reliability


@st.composite
def overlaps(draw):
    """(N, C, H, W) contributions with NaN where a tile does not cover a pixel."""
    n, c = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    values = draw(arrays(np.float32, (n, c, h, w), elements=st.floats(0, 1, width=32)))
    covered = draw(arrays(np.bool_, (n, h, w)))
    values[~np.broadcast_to(covered[:, None], values.shape)] = np.nan
    return values, covered


@settings(max_examples=150, deadline=None)
@given(overlaps(), st.sampled_from(["first", "last", "mean", "median", "max", "min"]))
def test_every_rule_agrees_with_numpy_on_random_overlaps(case, rule):
    values, covered = case
    merged = combine(values, rule, dates=list(range(20210101, 20210101 + len(values))))
    count = covered.sum(axis=0)
    np.testing.assert_array_equal(merged.count, count)
    none = count == 0
    assert np.isnan(merged.value[:, none]).all()
    assert (merged.source[none] == 0).all() and (merged.date[none] == 0).all()
    expected = {
        "mean": np.nanmean, "median": np.nanmedian, "max": np.nanmax, "min": np.nanmin,
    }.get(rule)  # fmt: skip
    if expected is not None:
        with warnings.catch_warnings():  # all-NaN pixels: numpy warns, and gives NaN as we do
            warnings.simplefilter("ignore", RuntimeWarning)
            want = expected(values, axis=0)
    if rule in ("first", "last"):
        order = range(len(values)) if rule == "first" else reversed(range(len(values)))
        want = np.full(values.shape[1:], np.nan, np.float32)
        for i in order:
            take = np.isnan(want[0]) & covered[i]
            want[:, take] = values[i][:, take]
    np.testing.assert_allclose(merged.value, want, rtol=1e-6, equal_nan=True)
    chosen = merged.source[~none].astype(int) - 1
    if rule in ("first", "last", "max", "min"):  # a selection: source and date say who won
        rows, cols = np.nonzero(~none)
        assert covered[chosen, rows, cols].all()
        assert (merged.date[~none] == 20210101 + chosen).all()


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300), st.integers(8, 128), st.integers(0, 64))
def test_windows_cover_the_axis_and_weights_sum_to_one(size, window, overlap):
    length = window_length(size, window, overlap)
    starts = window_starts(size, length, overlap)
    assert starts[0] == 0 and starts[-1] + length == size
    assert all(b - a <= length for a, b in itertools.pairwise(starts))
    total = np.zeros((1, size), np.float64)
    for _, x0, wt in window_weights((1, size), ([0], starts), (1, length), overlap):
        assert (wt >= 0).all() and (wt <= 1).all()
        total[:, x0 : x0 + length] += wt
    assert (total > 0).all()  # every pixel gets a weight, so blending never divides by 0


@settings(max_examples=40, deadline=None)
@given(st.integers(20, 90), st.integers(20, 90), st.integers(16, 48), st.integers(0, 16))
def test_blending_a_constant_field_returns_it_exactly(h, w, window, overlap):
    field = torch.arange(h * w, dtype=torch.float32).reshape(h, w)

    def identity(offsets, size):  # a "model" that returns its input window
        return {"x": torch.stack([field[y : y + size[0], x : x + size[1]] for y, x in offsets])}

    out = blend(identity, (h, w), window=window, overlap=overlap, batch_size=4)["x"]
    torch.testing.assert_close(out, field, rtol=1e-5, atol=1e-3)
