"""The temporal prior a network may refine: each date interpolated from its neighbours.

For every pixel and date, linear interpolation in time between the nearest available dates
before and after it, the date itself left out (constant extrapolation at the ends), plus the
date's radiometric offset per band: the median, over the date's available pixels, of
observed minus interpolated.  At a hidden pixel this is the ``linear_offset`` baseline; at an
available pixel, observed minus prior is what the date shows that its neighbours do not (a
local haze, a change, a cloud the mask missed), the evidence a network can carry into the
gaps.  Tensors in, tensors out (any device, no gradient needed); nothing is read or written.
"""

from __future__ import annotations

from cloudfree.extras import missing_extra

try:
    import torch
except ImportError as exc:
    raise missing_extra("torch", "train") from exc

# Fewest available pixels of a date from which its offset is measured (as linear_offset).
OFFSET_MIN_PIXELS = 16


def unrolled_days(doy: torch.Tensor) -> torch.Tensor:
    """(B, T) day-of-year values of ordered series as ascending day numbers (year wraps
    unrolled), as float."""
    doy = doy.to(torch.float64)
    wraps = torch.cumsum((torch.diff(doy, dim=1) < 0).to(torch.float64), dim=1)
    return doy + 365.0 * torch.nn.functional.pad(wraps, (1, 0))


def _fill_padding(doy: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """Days of year with every padding date given its nearest real date's (padding carries
    no date, and an arbitrary one would look like a year end)."""
    t = doy.shape[1]
    index = torch.arange(t, device=doy.device).expand_as(doy)
    last_real = torch.cummax(torch.where(pad, -1, index), dim=1).values
    first_real = torch.where(pad, t, index).min(dim=1, keepdim=True).values.clamp(max=t - 1)
    source = torch.where(last_real >= 0, last_real, first_real.expand_as(last_real))
    return torch.gather(doy, 1, source)


@torch.no_grad()
def temporal_prior(
    x: torch.Tensor, avail: torch.Tensor, doy: torch.Tensor, pad: torch.Tensor | None = None
) -> torch.Tensor:
    """(B, T, C, H, W) prior of normalised inputs ``x`` (0 where not available) with their
    availability ``avail`` (B, T, H, W), days of year ``doy`` (B, T) and padding ``pad``
    (B, T); 0 (the band mean) where a pixel has no other available date."""
    b, t, c, h, w = x.shape
    seen = avail > 0
    if pad is not None:
        seen = seen & ~pad.bool()[:, :, None, None]
    index = torch.arange(t, device=x.device).view(1, t, 1, 1).expand(b, t, h, w)
    before = torch.cummax(torch.where(seen, index, -1), dim=1).values
    after = torch.flip(
        torch.cummin(torch.flip(torch.where(seen, index, t), dims=[1]), dim=1).values, dims=[1]
    )
    # The date itself left out: the neighbours strictly before and after it.
    prev = torch.cat([torch.full_like(before[:, :1], -1), before[:, :-1]], dim=1)
    nxt = torch.cat([after[:, 1:], torch.full_like(after[:, :1], t)], dim=1)
    has_prev, has_next = prev >= 0, nxt < t
    p = torch.where(has_prev, prev, nxt).clamp(0, t - 1)
    n = torch.where(has_next, nxt, prev).clamp(0, t - 1)
    days = unrolled_days(doy if pad is None else _fill_padding(doy, pad.bool()))
    at = days[:, :, None, None].expand(b, t, h, w)
    d_prev = torch.gather(days, 1, p.flatten(1)).view(b, t, h, w)
    d_next = torch.gather(days, 1, n.flatten(1)).view(b, t, h, w)
    span = d_next - d_prev
    weight = torch.where(span > 0, (at - d_prev) / span.clamp_min(1e-9), torch.zeros_like(span))
    v_prev = torch.gather(x, 1, p[:, :, None].expand(b, t, c, h, w))
    v_next = torch.gather(x, 1, n[:, :, None].expand(b, t, c, h, w))
    interp = v_prev + weight.to(x.dtype)[:, :, None] * (v_next - v_prev)
    known = (has_prev | has_next)[:, :, None]
    interp = torch.where(known, interp, torch.zeros_like(interp))
    usable = (seen[:, :, None] & known).expand(b, t, c, h, w)
    residual = torch.where(usable, x - interp, torch.full_like(x, float("nan")))
    offset = torch.nanmedian(residual.flatten(3), dim=3).values  # (B, T, C)
    enough = usable[:, :, 0].flatten(2).sum(dim=2) >= OFFSET_MIN_PIXELS  # (B, T)
    offset = torch.where(enough[:, :, None], torch.nan_to_num(offset), torch.zeros_like(offset))
    return interp + offset[:, :, :, None, None]
