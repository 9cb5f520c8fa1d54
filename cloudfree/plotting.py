"""Shared figure helpers: saving, messages in empty panels, RGB composites and stretches."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from cloudfree.io import atomic_path

RGB = (3, 2, 1)  # B04, B03, B02 in the 13-band L1C order


RGB_NAMES = ("B04", "B03", "B02")


GAP_COLOUR = (1.0, 0.0, 1.0)  # evaluation gap: hidden from the methods, truth known


CLOUD_COLOUR = (0.0, 0.0, 0.0)  # real cloud, shadow or nodata in the input


NAN_COLOUR = (0.5, 0.5, 0.5)  # no value in a prediction / truth


def _save(fig: Figure, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")


def _message(ax: Axes, text: str) -> None:
    """An empty panel that says why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _regions(frame: pd.DataFrame) -> str:
    if "region" not in frame:
        return ""
    names = [str(r) for r in pd.unique(frame["region"].dropna())]
    return ", ".join(names)


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


def _rgb(image: np.ndarray, index: Sequence[int] = RGB) -> np.ndarray:
    """(C, H, W) reflectance -> (H, W, 3) float of the bands ``index`` (B04/B03/B02)."""
    return np.moveaxis(np.asarray(image, dtype=np.float32)[list(index)], 0, -1)


def _limits(rgb: np.ndarray, where: np.ndarray | None = None) -> tuple[float, float]:
    """2-98 percentile of the finite values of (H, W, 3) ``rgb`` at pixels ``where``."""
    values = rgb if where is None else rgb[where]
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 0.0, 0.3
    lo, hi = np.percentile(values, [2, 98])
    if not hi > lo:
        hi = lo + 1e-3
    return float(lo), float(hi)


def _stretch(rgb: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(H, W, 3) -> displayable [0, 1] RGB; pixels with a non-finite band are grey."""
    out = np.clip((rgb - lo) / (hi - lo), 0, 1)
    out[~np.isfinite(rgb).all(axis=-1)] = NAN_COLOUR
    return out


def _show(ax: Axes, image: np.ndarray, title: str) -> None:
    ax.imshow(image, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
