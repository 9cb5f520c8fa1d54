"""Several acquisitions of one date merged into one: the ``same_date`` key of the ``folder``
and ``stac`` sections.

Real Sentinel-2 data often has two acquisitions of one day over a tile: two granules
(MGRS tiles) of one overpass, overlapping orbits, or one scene in two processing baselines.
They are merged on the tile grid, tile by tile:

- the acquisitions are ordered (:func:`merge_order`): ``least_cloudy`` by their cloud
  fraction over the tile's valid pixels (from the masks the source has: mask files,
  probabilities, SCL), ties and acquisitions without a valid pixel last, by name (file name,
  or item time and id); ``first`` by name;
- every pixel takes the first acquisition in that order where it is valid (not nodata) and
  clear, or where none is clear the first where it is valid (:func:`first_valid`), so the
  merged mask is cloud only where no acquisition is clear; nodata where none is valid.  The
  bands, the mask and the probability of a pixel all come from the acquisition it takes
  (:func:`take`), in their own dtype and nodata.

A source without cloud masks (cloud detection after the tile stage) knows only nodata: the
acquisitions are then taken in name order, the first valid one per pixel.

``separate`` (every acquisition a date of its own, with its time) is refused
(:func:`check_same_date`): a date is a calendar day throughout the chain (manifest names,
packed day of year, metrics and mosaics per date).

The merge is recorded per tile and date in the manifest (:func:`merge_record`): the
acquisitions that gave pixels, ``;``-joined in merge order (``acquisitions``), and the rule
(``merge``, empty where one acquisition gave every pixel).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cloudfree.bands import CLEAR, MASK_NODATA
from cloudfree.errors import ConfigError
from cloudfree.manifest import MERGE_RULES

SAME_DATE_RULES = (*MERGE_RULES, "separate")  # the schema's enum
SEPARATOR = ";"  # between the acquisitions of one date in the manifest
log = logging.getLogger(__name__)


def check_same_date(rule: str, where: str) -> str:
    """``rule`` if it merges (one of :data:`MERGE_RULES`), else a ConfigError naming
    ``<where>.same_date``."""
    if rule == "separate":
        raise ConfigError(
            f"{where}.same_date: separate (each acquisition of a day a date of its own, its "
            "time in the date) is not available: a date is a calendar day (YYYY-MM-DD) "
            "throughout the workflow (tile names, packed day of year, metrics and mosaics per "
            "date). Use least_cloudy (per pixel the least cloudy clear acquisition) or first "
            "(file or time order), or give the acquisitions regions of their own"
        )
    if rule not in MERGE_RULES:
        raise ConfigError(f"{where}.same_date: {rule!r} is not one of {list(SAME_DATE_RULES)}")
    return rule


def clear_pixels(mask: np.ndarray | None, valid: np.ndarray) -> np.ndarray:
    """The valid pixels its mask calls clear (every valid pixel without a mask)."""
    return valid if mask is None else valid & (mask == CLEAR)


def cloud_fraction(mask: np.ndarray | None, valid: np.ndarray) -> float:
    """The share of the valid pixels that are not clear (cloud, thin cloud, shadow or no
    mask class); infinite without a valid pixel (such an acquisition sorts last)."""
    n = int(np.count_nonzero(valid))
    if not n:
        return math.inf
    return 1.0 - int(np.count_nonzero(clear_pixels(mask, valid))) / n


def merge_order(
    masks: Sequence[np.ndarray | None], valids: Sequence[np.ndarray], rule: str
) -> list[int]:
    """The indexes of one tile's acquisitions (given in file-name or time order) in merge
    order: ``least_cloudy`` by :func:`cloud_fraction`, ties in the given order; ``first`` in
    the given order; acquisitions without a valid pixel last either way."""

    def key(i: int) -> tuple[float, int]:
        fraction = cloud_fraction(masks[i], valids[i])
        if rule == "least_cloudy" or math.isinf(fraction):
            return fraction, i
        return 0.0, i

    return sorted(range(len(valids)), key=key)


def first_valid(
    order: Sequence[int], masks: Sequence[np.ndarray | None], valids: Sequence[np.ndarray]
) -> np.ndarray:
    """(H, W) int16: per pixel the acquisition it takes, the first in ``order`` where it is
    valid and clear, else the first where it is valid; -1 where none is valid."""
    choice = np.full(valids[0].shape, -1, np.int16)
    for i in reversed(order):  # an earlier acquisition overwrites a later one
        choice[valids[i]] = i
    for i in reversed(order):
        choice[clear_pixels(masks[i], valids[i])] = i
    return choice


def take(choice: np.ndarray, layers: Sequence[np.ndarray], fill: float) -> np.ndarray:
    """Per pixel the values of the layer ``choice`` names ((..., H, W) layers of one shape
    and dtype), ``fill`` where it names none (-1)."""
    out = np.full_like(layers[0], fill)
    for i, layer in enumerate(layers):
        where = choice == i
        out[..., where] = layer[..., where]
    return out


def merged_mask(choice: np.ndarray, masks: Sequence[np.ndarray]) -> np.ndarray:
    """The mask of the merged date: each pixel's class in the acquisition it takes (clear
    wherever one acquisition is), nodata where none is valid."""
    return take(choice, masks, MASK_NODATA)


def used(order: Sequence[int], choice: np.ndarray) -> list[int]:
    """The acquisitions of ``order`` that give the tile at least one pixel (all of them
    where none does: a tile without data on that date)."""
    taken = [i for i in order if np.any(choice == i)]
    return taken or list(order)


@dataclass(frozen=True)
class Layers:
    """One acquisition (or the merged date) on a tile: bands (..., H, W) at the source's
    nodata where not valid, cloud mask and probability (None where the source has none) and
    the valid pixels."""

    image: np.ndarray
    mask: np.ndarray | None
    probability: np.ndarray | None
    valid: np.ndarray

    def cut(self, rows: slice, cols: slice) -> Layers:
        """The part of a strip a tile covers."""

        def part(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[..., rows, cols]

        return Layers(self.image[..., rows, cols], part(self.mask), part(self.probability),
                      self.valid[rows, cols])  # fmt: skip


def merge(acquisitions: Sequence[Layers], rule: str, nodata: float) -> tuple[Layers, list[int]]:
    """One tile's acquisitions of a date (in file-name or time order) merged by ``rule``
    (:func:`merge_order`, :func:`first_valid`), bands at ``nodata`` where none is valid; and
    the indexes of the acquisitions that gave pixels, in merge order (:func:`used`)."""
    if len(acquisitions) == 1:
        return acquisitions[0], [0]
    masks = [a.mask for a in acquisitions]
    valids = [a.valid for a in acquisitions]
    order = merge_order(masks, valids, rule)
    choice = first_valid(order, masks, valids)
    mask = prob = None
    if all(m is not None for m in masks):
        mask = merged_mask(choice, masks)  # type: ignore[arg-type]
    probs = [a.probability for a in acquisitions]
    if all(p is not None for p in probs):
        prob = take(choice, probs, np.nan)  # type: ignore[arg-type]
    image = take(choice, [a.image for a in acquisitions], nodata)
    return Layers(image, mask, prob, choice >= 0), used(order, choice)


def merge_record(names: Sequence[str], rule: str) -> dict[str, str]:
    """The manifest columns of one tile and date made of the acquisitions ``names`` (in merge
    order): ``acquisitions`` (``;``-joined) and ``merge`` (the rule, empty for one)."""
    return {
        "acquisitions": SEPARATOR.join(names),
        "merge": rule if len(names) > 1 else "",
    }


def log_merge(where: str, tile: str, iso: str, names: Sequence[str], rule: str) -> None:
    """One line per tile and date merged from several acquisitions."""
    if len(names) > 1:
        log.info("%s: tile %s, date %s merged from %d acquisitions (%s): %s", where, tile, iso,
                 len(names), rule, "; ".join(names))  # fmt: skip
