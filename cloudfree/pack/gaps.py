"""Evaluation gaps: real cloud masks of other tiles laid over the val/test tiles at packing time,
leaving out every pixel a train tile covers too.

Works on in-memory masks and the manifest's tile bounds; reads and writes no file (the
writer stores the gaps as each val/test tile's ``gap`` dataset).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from cloudfree.bands import cloudy


def evaluation_gaps(
    masks: dict[str, np.ndarray], targets: list[str], *, seed: int, date_fraction: float
) -> dict[str, np.ndarray]:
    """Fixed evaluation gaps: real cloud masks of other tiles laid over the target tiles.

    For each target tile, a ``date_fraction`` share of its dates gets the cloud/shadow
    pixels of a randomly chosen (tile, date) of another tile.  Deterministic in ``seed``.
    """
    rng = np.random.default_rng(seed)
    names = sorted(masks)
    donors = [
        (name, t)
        for name in names
        for t in range(masks[name].shape[0])
        if 0.05 <= cloudy(masks[name][t]).mean() <= 0.9
    ]
    gaps: dict[str, np.ndarray] = {}
    for target in sorted(targets):
        tmask = masks[target]
        gap = np.zeros(tmask.shape, dtype=bool)
        candidates = [d for d in donors if d[0] != target] or donors
        for t in range(tmask.shape[0]):
            if not candidates or rng.random() >= date_fraction:
                continue
            name, dt = candidates[rng.integers(len(candidates))]
            donor = cloudy(masks[name][dt])
            if donor.shape != tmask.shape[1:]:
                donor = _fit(donor, tmask.shape[1:])
            gap[t] = donor
        gaps[target] = gap
    return gaps


def train_overlap(
    manifest: pd.DataFrame, shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, np.ndarray]:
    """For each val/test tile, its (H, W) pixels that a train tile of the same CRS covers,
    even partly (tiles cut with overlap, or moved back to end at the region's edge).

    Tiles without bounds in the manifest are left out.  The intersecting train tiles are
    found with one vectorised test per val/test tile (regions of thousands of tiles).
    """
    cols = ["tile", "split", "crs", "left", "bottom", "right", "top"]
    boxes = manifest[cols].drop_duplicates("tile")
    boxes = boxes[boxes[["left", "bottom", "right", "top"]].notna().all(axis=1)]
    train = boxes[boxes["split"] == "train"]
    out: dict[str, np.ndarray] = {}
    for crs, group in boxes[boxes["split"] != "train"].groupby("crs", sort=False):
        same = train[train["crs"] == crs]
        tl, tb, tr, tt = (same[c].to_numpy(float) for c in ("left", "bottom", "right", "top"))
        for b in group.itertuples():
            hits = (tl < b.right) & (tr > b.left) & (tb < b.top) & (tt > b.bottom)
            if not hits.any():
                continue
            h, w = shapes[str(b.tile)][:2]
            xres, yres = (b.right - b.left) / w, (b.top - b.bottom) / h
            shared = np.zeros((h, w), dtype=bool)
            boxes_hit = zip(tl[hits], tb[hits], tr[hits], tt[hits], strict=True)
            for left, bottom, right, top in boxes_hit:
                # every pixel the train tile touches, even partly (1e-6 px of slack)
                c0 = math.floor((max(left, b.left) - b.left) / xres + 1e-6)
                c1 = math.ceil((min(right, b.right) - b.left) / xres - 1e-6)
                r0 = math.floor((b.top - min(top, b.top)) / yres + 1e-6)
                r1 = math.ceil((b.top - max(bottom, b.bottom)) / yres - 1e-6)
                shared[max(r0, 0) : r1, max(c0, 0) : c1] = True
            out[str(b.tile)] = shared
    return out


def _fit(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Tile or crop a donor mask to another tile's shape."""
    reps = (-(-shape[0] // mask.shape[0]), -(-shape[1] // mask.shape[1]))
    return np.tile(mask, reps)[: shape[0], : shape[1]]
