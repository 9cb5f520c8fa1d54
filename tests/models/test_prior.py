"""The temporal prior: leave-one-date-out interpolation plus each date's offset."""

from __future__ import annotations

import numpy as np
import torch

from cloudfree.models.interpolate import linear_offset
from cloudfree.models.prior import OFFSET_MIN_PIXELS, temporal_prior, unrolled_days

DOY = torch.tensor([[10, 20, 30, 45, 60, 70]])


def _trend() -> torch.Tensor:
    """(1, T, 2, 8, 8): every pixel linear in time, date 3 brighter by 0.03 / darker by 0.01."""
    g = torch.Generator().manual_seed(0)
    level = torch.rand(1, 1, 2, 8, 8, generator=g) * 0.25 + 0.05
    slope = (torch.rand(1, 1, 2, 8, 8, generator=g) - 0.5) * 4e-3
    x = level + slope * DOY[:, :, None, None, None].double()
    x[:, 3, 0] += 0.03
    x[:, 3, 1] -= 0.01
    return x.float()


def test_hidden_pixels_get_the_trend_and_the_dates_offset() -> None:
    truth = _trend()
    avail = torch.ones(1, 6, 8, 8)
    avail[0, 3, :4, :4] = 0
    x = truth * avail[:, :, None]
    prior = temporal_prior(x, avail, DOY)
    hidden = avail[0, 3] == 0
    torch.testing.assert_close(prior[0, 3][:, hidden], truth[0, 3][:, hidden], atol=1e-5, rtol=0)


def test_available_pixels_are_predicted_from_the_other_dates() -> None:
    """At an available pixel the prior does not copy it: it shows what its neighbours say."""
    truth = _trend()
    truth[0, 2, :, 5, 5] += 0.2  # one pixel changes on date 2 only
    avail = torch.ones(1, 6, 8, 8)
    prior = temporal_prior(truth, avail, DOY)
    assert (prior[0, 2, :, 5, 5] - truth[0, 2, :, 5, 5]).abs().min() > 0.15
    others = torch.ones(8, 8, dtype=torch.bool)
    others[5, 5] = False
    torch.testing.assert_close(prior[0, 1][:, others], truth[0, 1][:, others], atol=2e-4, rtol=0)


def test_the_prior_at_hidden_pixels_is_the_linear_offset_baseline() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(1, 6, 2, 9, 9, generator=g)
    avail = (torch.rand(1, 6, 9, 9, generator=g) > 0.35).float()
    prior = temporal_prior(x * avail[:, :, None], avail, DOY)[0].numpy()
    days = DOY[0].numpy().astype(float)
    base = linear_offset(x[0].numpy(), avail[0].numpy() > 0, days)
    hidden = avail[0].numpy() == 0
    # Offsets are medians: torch takes the lower middle value, numpy the mean of both.
    diff = np.abs(prior - base).transpose(0, 2, 3, 1)[hidden]
    assert np.median(diff) < 0.05
    assert diff.max() < 0.5


def test_too_few_pixels_give_no_offset_and_lonely_pixels_zero() -> None:
    x = torch.full((1, 3, 1, 4, 4), 0.5)
    x[:, 1] = 0.7
    avail = torch.ones(1, 3, 4, 4)
    assert avail[0, 1].sum() == OFFSET_MIN_PIXELS
    avail[0, 1, 0, 0] = 0  # 15 available pixels: no offset measured for date 1
    prior = temporal_prior(x * avail[:, :, None], avail, torch.tensor([[1, 2, 3]]))
    torch.testing.assert_close(prior[0, 1], torch.full((1, 4, 4), 0.5))
    lonely = torch.zeros(1, 3, 4, 4)
    lonely[0, 1] = 1  # only date 1 available: the other dates' neighbours are none at all
    out = temporal_prior(x * lonely[:, :, None], lonely, torch.tensor([[1, 2, 3]]))
    assert (out[0, 1] == 0).all()


def test_padding_dates_are_no_neighbours() -> None:
    truth = _trend()
    avail = torch.ones(1, 6, 8, 8)
    pad = torch.zeros(1, 6, dtype=torch.bool)
    pad[0, 5] = True
    noisy = truth.clone()
    noisy[:, 5] = 9.0
    a = temporal_prior(noisy, avail, DOY, pad)
    b = temporal_prior(truth[:, :5], avail[:, :5], DOY[:, :5])
    torch.testing.assert_close(a[:, :5], b)


def test_days_unroll_across_the_year_end() -> None:
    days = unrolled_days(torch.tensor([[350, 360, 5, 20]]))
    assert days.tolist() == [[350.0, 360.0, 370.0, 385.0]]
