"""Gap-filling baselines: simple per-pixel reconstructions of a cloudy time series.

Every baseline has one signature::

    f(refl: (T, C, H, W) float32, available: (T, H, W) bool, days: (T,) int)
        -> (T, C, H, W) float32

``available`` marks the observations a baseline may use (e.g. ``clear & ~gap``); a pixel
whose reflectance is not finite in every band is treated as unavailable as well.
``days`` are the dates as day numbers (ascending, e.g. :attr:`TileSeries.days`).

- ``linear``: per pixel, linear interpolation in time between the previous and the next
  available date, weighted by the days between them; constant extrapolation before the
  first and after the last available date.  Returns the input at available pixels.
- ``closest``: the value of the available date nearest in days (ties go to the earlier
  date).  Returns the input at available pixels.
- ``last``: the value of the latest available date at or before each date (persistence of
  the last clear observation); before the first available date, the first one.  Returns
  the input at available pixels.
- ``mean``: the per-pixel mean of the available observations, the same at every date,
  **including at available pixels** (it is a composite, not a gap filler).
- ``least_cloudy``: the date with the largest available fraction over the tile (ties go to
  the earlier date); where that date is unavailable at a pixel, the ``closest`` value to
  that date.  The same image at every date, **including at available pixels**.
- ``linear_offset``: ``linear``, plus at each date's hidden pixels that date's radiometric
  offset per band, measured on its observed pixels (the median of observed minus the
  interpolation between the neighbouring dates without it): a date seen through a brighter
  or darker atmosphere than its neighbours is corrected.  Returns the input at available
  pixels.
- ``harmonic``: per pixel and band, least squares of a constant plus annual and
  semi-annual harmonics on the available dates (at least 8 observations, else ``linear``).
  Returns the input at available pixels.
- ``whittaker``: the Whittaker smoother per pixel and band (second differences on the
  uneven dates, lambda 1e4: a cut-off near 63 days), fitted to the available dates.
  Returns the input at available pixels.

Pixels with no available date at all get, at each date, the per-band mean of all
available pixels of that date in the tile; at dates without any available pixel, the
per-band mean of all available pixels of the whole tile.  They stay NaN only if the tile
has no available pixel at all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from cloudfree.errors import ConfigError
from cloudfree.extras import missing_extra
from cloudfree.models.fits import harmonic, whittaker
from cloudfree.models.interpolate import closest, last, least_cloudy, linear, linear_offset, mean

try:
    import torch
    from torch import nn
except ImportError as exc:
    raise missing_extra("torch", "train") from exc

Baseline = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


BASELINES: dict[str, Baseline] = {
    "linear": linear,
    "closest": closest,
    "last": last,
    "mean": mean,
    "least_cloudy": least_cloudy,
    "linear_offset": linear_offset,
    "harmonic": harmonic,
    "whittaker": whittaker,
}


def get_baseline(name: str) -> Baseline:
    """A baseline by name; unknown names raise :class:`ConfigError` listing the known ones."""
    try:
        return BASELINES[name]
    except KeyError:
        raise ConfigError(
            f"unknown baseline {name!r}; known baselines: {', '.join(BASELINES)}"
        ) from None


def doy_to_days(doy: np.ndarray) -> np.ndarray:
    """Day-of-year values of an ordered series as ascending day numbers (year wraps unrolled)."""
    doy = np.asarray(doy, dtype=np.int64)
    wraps = np.concatenate(([0], np.cumsum(np.diff(doy) < 0)))
    return doy + 365 * wraps


class BaselineModel(nn.Module):
    """A gap filler of :data:`BASELINES` behind the network interface (no training).

    Works in any units (every baseline commutes with the per-band normalisation); runs on
    the CPU with numpy, sample by sample, and returns on the input's device.  Padding
    dates are left out and get zeros; pixels with nothing available at all get 0 (the
    band mean in normalised units).  Network settings (``widths``, ``heads``, ...) are
    accepted and ignored: the config fills them in whatever the model name.
    """

    method = "linear"
    trainable = False

    def __init__(self, in_channels: int, **network: Any) -> None:
        super().__init__()
        del network
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        self.in_channels = in_channels
        self.multiple = 1
        # Empty, frozen: gives callers a device (``next(model.parameters())``), nothing to learn.
        self.anchor = nn.Parameter(torch.zeros(0), requires_grad=False)

    def forward(
        self,
        x: torch.Tensor,
        avail: torch.Tensor,
        doy: torch.Tensor,
        pad: torch.Tensor | None = None,
        *,
        s1: torch.Tensor | None = None,
    ) -> torch.Tensor:
        del s1  # the baselines fill gaps from the optical series alone
        b, t, c, _, _ = x.shape
        if c != self.in_channels:
            raise ValueError(f"expected {self.in_channels} bands, got {c}")
        fill = BASELINES[self.method]
        xs = x.detach().float().cpu().numpy()
        av = avail.detach().cpu().numpy() > 0
        days = doy.detach().cpu().numpy()
        keep = np.ones((b, t), dtype=bool) if pad is None else ~pad.detach().cpu().numpy()
        out = np.zeros(xs.shape, dtype=np.float32)
        for i in range(b):
            k = keep[i]
            if k.any():
                filled = fill(xs[i][k], av[i][k], doy_to_days(days[i][k]))
                out[i, k] = np.nan_to_num(filled, nan=0.0)
        return torch.from_numpy(out).to(x.device)


# One model class per baseline, registered by name in cloudfree.models.registry.
BASELINE_MODELS: dict[str, type[BaselineModel]] = {
    name: type(f"Baseline_{name}", (BaselineModel,), {"method": name}) for name in BASELINES
}
