"""Property-based tests of the metric kernels: ranges, symmetry, identity, empty sets and pooling
over dates."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cloudfree.metrics import kernels as metrics

pytestmark = pytest.mark.reliability

reflectance = st.floats(0.0, 1.0, allow_nan=False, width=32)


@st.composite
def image_pairs(draw, max_bands: int = 4, max_side: int = 12):
    c = draw(st.integers(1, max_bands))
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    pred = draw(arrays(np.float32, (c, h, w), elements=reflectance))
    truth = draw(arrays(np.float32, (c, h, w), elements=reflectance))
    sel = draw(arrays(np.bool_, (h, w)))
    return pred, truth, sel


@settings(max_examples=150, deadline=None)
@given(image_pairs())
def test_errors_are_non_negative_bounded_and_symmetric(pair):
    pred, truth, sel = pair
    for fn in (metrics.mae, metrics.rmse, metrics.sam):
        a, b = fn(pred, truth, sel), fn(truth, pred, sel)
        if not sel.any():
            assert np.isnan(a) and np.isnan(b)
            continue
        assert a >= 0
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9)
    if sel.any():
        mae, rmse = metrics.mae(pred, truth, sel), metrics.rmse(pred, truth, sel)
        assert mae <= 1.0 + 1e-12
        assert mae <= rmse + 1e-12  # the mean of |e| never exceeds the root mean square
        assert metrics.sam(pred, truth, sel) <= 180.0
        bands = metrics.band_mae(pred, truth, sel)
        assert bands.mean() == pytest.approx(mae, rel=1e-9, abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(image_pairs())
def test_a_perfect_prediction_scores_perfectly(pair):
    _, truth, sel = pair
    if not sel.any():
        return
    assert metrics.mae(truth, truth, sel) == 0
    assert metrics.psnr(truth, truth, sel) == np.inf
    assert metrics.ssim(truth, truth, sel) == pytest.approx(1.0, abs=1e-9)
    assert metrics.sam(truth, truth, sel) == pytest.approx(0.0, abs=1e-3)


@settings(max_examples=100, deadline=None)
@given(image_pairs())
def test_ssim_is_symmetric_and_at_most_one(pair):
    pred, truth, sel = pair
    a, b = metrics.ssim(pred, truth, sel), metrics.ssim(truth, pred, sel)
    if not sel.any():
        assert np.isnan(a)
        return
    assert a <= 1.0 + 1e-9
    assert a == pytest.approx(b, rel=1e-9, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(image_pairs(), st.floats(1e-3, 0.5))
def test_psnr_falls_as_a_uniform_error_grows(pair, err):
    _, truth, sel = pair
    if not sel.any():
        return
    near, far = truth + err / 2, truth + err
    assert metrics.psnr(near, truth, sel) > metrics.psnr(far, truth, sel)
    assert metrics.psnr(far, truth, sel) == pytest.approx(20 * np.log10(1 / err), abs=1e-3)


@settings(max_examples=60, deadline=None)
@given(image_pairs())
def test_non_finite_truth_is_never_scored(pair):
    pred, truth, sel = pair
    bad = truth.copy()
    bad[:, 0, 0] = np.nan
    keep = sel.copy()
    keep[0, 0] = False
    expected = metrics.mae(pred, truth, keep)
    got = metrics.mae(pred, bad, sel)
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=1e-9)


@st.composite
def series_pairs(draw, max_dates: int = 4, max_bands: int = 3, max_side: int = 8):
    t = draw(st.integers(1, max_dates))
    c = draw(st.integers(1, max_bands))
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    pred = draw(arrays(np.float32, (t, c, h, w), elements=reflectance))
    truth = draw(arrays(np.float32, (t, c, h, w), elements=reflectance))
    sel = draw(arrays(np.bool_, (t, h, w)))
    return pred, truth, sel


@settings(max_examples=80, deadline=None)
@given(series_pairs())
def test_pooled_errors_weigh_every_pixel_once(pair):
    """Pooled over dates, MAE is the pixel-weighted mean of the dates' MAEs, RMSE the root
    of their pixel-weighted mean squares; one date pooled is that date."""
    pred, truth, sel = pair
    pooled = metrics.score_pooled(pred, truth, {"s": sel})
    dates = metrics.score_series(pred, truth, {"s": sel})
    n = np.array([d["n_s"] for d in dates])
    assert pooled["n_s"] == n.sum()
    if n.sum() == 0:
        assert np.isnan(pooled["mae_s"]) and np.isnan(pooled["ssim_s"])
        return
    used = n > 0
    mae = np.array([d["mae_s"] for d in dates])[used]
    rmse = np.array([d["rmse_s"] for d in dates])[used]
    ssim = np.array([d["ssim_s"] for d in dates])[used]
    w = n[used] / n.sum()
    assert pooled["mae_s"] == pytest.approx(float((w * mae).sum()), rel=1e-6, abs=1e-9)
    assert pooled["rmse_s"] == pytest.approx(
        float(np.sqrt((w * rmse**2).sum())), rel=1e-6, abs=1e-9
    )
    assert pooled["ssim_s"] == pytest.approx(float((w * ssim).sum()), rel=1e-6, abs=1e-9)
    if len(dates) == 1:
        assert pooled == pytest.approx(dates[0], nan_ok=True)
