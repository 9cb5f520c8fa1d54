"""What the figure modules of every stage share: saving a PNG, a panel that says why it is empty,
region names in titles, RGB composites of any band set and their percentile stretch.

Reads nothing; :func:`save_figure` writes one PNG atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from cloudfree.io import atomic_path

RGB = (3, 2, 1)  # B04, B03, B02 in the 13-band L1C order
RGB_NAMES = ("B04", "B03", "B02")
NAN_COLOUR = (0.5, 0.5, 0.5)  # no value in a prediction / truth


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> None:
    """Write ``fig`` as a PNG at ``path`` (via a temporary sibling, so never half-written)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def _no_ticks(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def panel_message(ax: Axes, text: str) -> None:
    """An empty panel that says why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    _no_ticks(ax)


def region_names(frame: pd.DataFrame) -> str:
    """The distinct values of ``frame["region"]``, comma separated ("" without the column)."""
    if "region" not in frame:
        return ""
    return ", ".join(str(r) for r in pd.unique(frame["region"].dropna()))


def with_region(title: str, region: str) -> str:
    """``title, region``, or ``title`` alone when ``region`` is empty."""
    return f"{title}, {region}" if region else title


def rgb_bands(bands: Sequence[str | None] | None, count: int) -> tuple[tuple[int, ...], str]:
    """0-based indices of the bands shown as red, green, blue and a label for them.

    B04/B03/B02 by name when ``bands`` has them, by position for 13 unnamed bands, else the
    first band three times (grey levels).
    """
    names = [str(b) if b else "" for b in bands or ()]
    if all(n in names for n in RGB_NAMES):
        return tuple(names.index(n) for n in RGB_NAMES), "/".join(RGB_NAMES)
    if not any(names) and count == 13:
        return RGB, "/".join(RGB_NAMES)
    return (0, 0, 0), (names[0] if names and names[0] else "band 1")


def rgb_composite(image: np.ndarray, index: Sequence[int]) -> np.ndarray:
    """(C, H, W) values -> (H, W, 3) float32 of the bands ``index`` (from :func:`rgb_bands`)."""
    return np.moveaxis(np.asarray(image, dtype=np.float32)[list(index)], 0, -1)


def stretch_limits(rgb: np.ndarray, where: np.ndarray | None = None) -> tuple[float, float]:
    """2-98 percentile of the finite values of (..., 3) ``rgb`` at pixels ``where``.

    (0, 0.3) when no value is finite; ``hi`` is at least ``lo + 0.001``.
    """
    values = rgb if where is None else rgb[where]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 0.3
    lo, hi = np.percentile(values, [2, 98])
    if not hi > lo:
        hi = lo + 1e-3
    return float(lo), float(hi)


def stretch(rgb: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(H, W, 3) -> displayable [0, 1] RGB; pixels with a non-finite band are grey."""
    out = np.clip((rgb - lo) / (hi - lo), 0, 1)
    out[~np.isfinite(rgb).all(axis=-1)] = NAN_COLOUR
    return out


def show_image(ax: Axes, image: np.ndarray, title: str, **imshow: Any) -> AxesImage:
    """``image`` drawn pixel for pixel (``imshow`` options passed on) without ticks."""
    shown = ax.imshow(image, interpolation="nearest", **imshow)
    ax.set_title(title, fontsize=8)
    _no_ticks(ax)
    return shown
