"""Persistence rules: how the contributions that overlap a pixel become its mosaic value.

:data:`RULES` is the one table of the rules (its keys are the schema's ``mosaic.rule``
values) and of how each merges; both accumulators of :mod:`cloudfree.mosaic.merge` read it.

- ``first``/``last`` take the first/last contribution in order, band by band;
- ``max``/``min`` the extreme of each band; source and date are those of the first band's;
- ``mean``/``median`` a statistic of each band over all contributions; source and date are
  those of the contribution closest to the result in the first band;
- score rules pick whole pixels: ``best_quality`` prefers observed over reconstructed pixels,
  then the contribution with the best base score (least cloudy source; for composites also
  the date closest to the target); ``most_persistent`` (change maps) the highest value of the
  first band (cosine similarity).

Ties go to the earlier contribution.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cloudfree.errors import ConfigError

# Quality classes of the inference stage that the merge needs (0 = none).
OBSERVED, QUALITY_UNKNOWN = 1, 255


def _mean(stack: np.ndarray, finite: np.ndarray) -> np.ndarray:
    n = finite.sum(axis=0)
    total = np.where(finite, stack, 0).sum(axis=0, dtype=np.float64)
    return np.where(n > 0, total / np.maximum(n, 1), np.nan).astype(np.float32)


def _median(stack: np.ndarray, finite: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
        return np.nanmedian(stack, axis=0).astype(np.float32)


def _quality_score(values: np.ndarray, quality: np.ndarray, base: float) -> np.ndarray:
    """Observed (2 + base score) beats reconstructed (1 + base score)."""
    return np.where(quality == OBSERVED, 2.0, 1.0).astype(np.float32) + np.float32(base)


def _first_band(values: np.ndarray, quality: np.ndarray, base: float) -> np.ndarray:
    return values[0]


@dataclass(frozen=True)
class Rule:
    """How one persistence rule merges: exactly one of ``order``, ``better``, ``statistic``
    and ``score`` is set."""

    # "first" or "last": by contribution order, band by band
    order: str | None = None
    # per-band extreme: strictly better comparison (np.greater, np.less) and the NaN-ignoring
    # elementwise pick (np.fmax, np.fmin)
    better: np.ufunc | None = None
    keep: np.ufunc | None = None
    # over the stack of contributions: (stack (N, C, H, W), finite) -> (C, H, W) float32
    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    # whole pixels by score: (values (C, H, W), quality classes (H, W), base score) -> (H, W)
    score: Callable[[np.ndarray, np.ndarray, float], np.ndarray] | None = None
    # the base score is the clear share of the contribution's quality rasters
    clear_score: bool = False

    @property
    def stacked(self) -> bool:
        """The rule needs every contribution of a window at once."""
        return self.statistic is not None

    @property
    def per_band_pick(self) -> bool:
        """Each band takes one contribution's value: mergeable in the data's own dtype."""
        return self.order is not None or self.better is not None


RULES: dict[str, Rule] = {
    "first": Rule(order="first"),
    "last": Rule(order="last"),
    "mean": Rule(statistic=_mean),
    "median": Rule(statistic=_median),
    "max": Rule(better=np.greater, keep=np.fmax),
    "min": Rule(better=np.less, keep=np.fmin),
    "best_quality": Rule(score=_quality_score, clear_score=True),
    "most_persistent": Rule(score=_first_band),
}


def rule_of(name: str, key: str = "mosaic.rule") -> Rule:
    """The rule called ``name``; an unknown one raises ConfigError naming the config ``key``."""
    try:
        return RULES[name]
    except KeyError:
        raise ConfigError(
            f"{key}: unknown rule {name!r}; known rules: {', '.join(RULES)}"
        ) from None
