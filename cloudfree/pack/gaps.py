"""Evaluation gaps: real cloud masks of other tiles laid over the val/test tiles at packing time,
leaving out every pixel a train tile covers too.

Works on masks indexed by date (arrays, or the datasets of the file being written, read one
date at a time) and the manifest's tile bounds; writes no file (the writer stores the gaps
as each val/test tile's ``gap`` dataset, one tile at a time).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from cloudfree.bands import cloudy


def cloud_covers(mask: np.ndarray) -> np.ndarray:
    """(T,) share of each date's pixels that are cloud or shadow (a donor's cover)."""
    return cloudy(mask).reshape(mask.shape[0], -1).mean(axis=1)


def evaluation_gaps(
    masks: Mapping[str, np.ndarray], targets: list[str], *, seed: int, date_fraction: float
) -> dict[str, np.ndarray]:
    """Fixed evaluation gaps: real cloud masks of other tiles laid over the target tiles.

    For each target tile, a ``date_fraction`` share of its dates gets the cloud/shadow
    pixels of a randomly chosen (tile, date) of another tile.  Deterministic in ``seed``.
    """
    covers = {name: cloud_covers(np.asarray(m)) for name, m in masks.items()}
    return dict(
        iter_evaluation_gaps(masks, covers, targets, seed=seed, date_fraction=date_fraction)
    )


def iter_evaluation_gaps(
    masks: Mapping[str, Any],
    covers: Mapping[str, np.ndarray],
    targets: list[str],
    *,
    seed: int,
    date_fraction: float,
) -> Iterator[tuple[str, np.ndarray]]:
    """:func:`evaluation_gaps` one target at a time, in name order, for masks that need not
    be in memory: ``masks[name]`` is anything indexed by date with a ``shape`` (an h5py
    dataset: one donor date is read at a time), ``covers[name]`` the tile's
    :func:`cloud_covers`.  Memory holds one target's gap and one donor date."""
    rng = np.random.default_rng(seed)
    donors = [
        (name, t)
        for name in sorted(covers)
        for t, cover in enumerate(covers[name])
        if 0.05 <= cover <= 0.9
    ]
    # donors are in name order: a target's own dates are one block [lo, hi), skipped by
    # shifting the drawn index (the draws of a filtered copy, without a copy per target)
    block: dict[str, tuple[int, int]] = {}
    for i, (name, _) in enumerate(donors):
        block[name] = (block.get(name, (i, i))[0], i + 1)
    for target in sorted(targets):
        shape = tuple(masks[target].shape)
        gap = np.zeros(shape, dtype=bool)
        lo, hi = block.get(target, (0, 0))
        if hi - lo == len(donors):  # no other tile's dates: the target's own
            lo = hi = 0
        n = len(donors) - (hi - lo)
        for t in range(shape[0]):
            if not n or rng.random() >= date_fraction:
                continue
            i = int(rng.integers(n))
            name, dt = donors[i if i < lo else i + hi - lo]
            donor = cloudy(np.asarray(masks[name][dt]))
            if donor.shape != shape[1:]:
                donor = _fit(donor, shape[1:])
            gap[t] = donor
        yield target, gap


class TrainOverlap:
    """:func:`train_overlap` of one val/test tile at a time (the train tiles' bounds indexed
    once per CRS): memory holds one tile's pixels, not every tile's."""

    def __init__(self, manifest: pd.DataFrame) -> None:
        cols = ["tile", "split", "crs", "left", "bottom", "right", "top"]
        boxes = manifest[cols].drop_duplicates("tile")
        boxes = boxes[boxes[["left", "bottom", "right", "top"]].notna().all(axis=1)]
        train = boxes[boxes["split"] == "train"]
        self.boxes = {str(b.tile): b for b in boxes[boxes["split"] != "train"].itertuples()}
        self.train = {
            crs: tuple(group[c].to_numpy(float) for c in ("left", "bottom", "right", "top"))
            for crs, group in train.groupby("crs", sort=False)
        }

    def __call__(self, tile: str, shape: tuple[int, ...]) -> np.ndarray | None:
        """(H, W) pixels of ``tile`` a train tile covers, or None (none, or no bounds)."""
        b = self.boxes.get(tile)
        if b is None or b.crs not in self.train:
            return None
        tl, tb, tr, tt = self.train[b.crs]
        hits = (tl < b.right) & (tr > b.left) & (tb < b.top) & (tt > b.bottom)
        if not hits.any():
            return None
        h, w = shape[:2]
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
        return shared


def train_overlap(
    manifest: pd.DataFrame, shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, np.ndarray]:
    """For each val/test tile, its (H, W) pixels that a train tile of the same CRS covers,
    even partly (tiles cut with overlap, or moved back to end at the region's edge).

    Tiles without bounds in the manifest are left out.  The intersecting train tiles are
    found with one vectorised test per val/test tile (regions of thousands of tiles);
    :class:`TrainOverlap` gives them one at a time.
    """
    overlap = TrainOverlap(manifest)
    out = {}
    for tile in overlap.boxes:
        shared = overlap(tile, shapes[tile]) if tile in shapes else None
        if shared is not None:
            out[tile] = shared
    return out


def _fit(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Tile or crop a donor mask to another tile's shape."""
    reps = (-(-shape[0] // mask.shape[0]), -(-shape[1] // mask.shape[1]))
    return np.tile(mask, reps)[: shape[0], : shape[1]]
