"""The checks of a ``folder`` region's files, made before anything is cast or allocated.

Each error names the file and date: an image's header (:func:`check_image`: a CRS, integer
or float pixels, the bands of ``folder.bands``); all dates integers (DN) or all floats
(reflectance) (:func:`check_dtypes`); a date whose footprint lies off the others' refused or
left out (:func:`far_off`, :func:`drop_outliers`); a cloud mask georeferenced and covering
its image (:func:`check_aligned`); the valid values of a date, scaled, plausible
reflectance, non-finite ones counted (:class:`ValueStats`); one row of tiles (of each
acquisition of a date) fitting in ``max_memory_gb`` (:func:`check_strip_memory`).  The
checks of the files of one date against each other are in
:mod:`cloudfree.tiles.folder_same_date`.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from rasterio.crs import CRS
from rasterio.warp import transform_bounds

from cloudfree.errors import InputDataError
from cloudfree.tiles.folder_bands import BandSettings, band_indexes
from cloudfree.tiles.grid import check_memory, open_raster

# Reflectance (value * scale + offset) a valid value may plausibly have: L2A's -0.1 offset
# and noise below, bright clouds and glint above.  A date with more than OUTSIDE_MAX of its
# valid values outside, or whose brightest value is below DARKEST_MAX (every pixel would be
# DN 1: reflectance 0..1 read with the DN scale), is refused.
PLAUSIBLE = (-0.2, 2.0)
OUTSIDE_MAX = 0.01
DARKEST_MAX = 0.005
# Bytes one row of tiles in flight takes per band and pixel (float32 warp, its scaled copy,
# uint16 DN of this row and of the row being written, comparison masks) and per pixel
# (valid flags, mask, probability).
STRIP_BYTES_PER_BAND_PX = 20
STRIP_BYTES_PER_PX = 12
# Bytes each further acquisition of one date keeps until the date's tiles are merged (its
# uint16 DN per band; mask, probability and valid flags per pixel).
ACQUISITION_BYTES_PER_BAND_PX = 2
ACQUISITION_BYTES_PER_PX = 6
log = logging.getLogger(__name__)


class FolderSettings(BandSettings, Protocol):
    """The keys of the ``folder`` section the checks read (a FolderSpec): those of
    :class:`~cloudfree.tiles.folder_bands.BandSettings` and these."""

    @property
    def scale(self) -> float: ...
    @property
    def offset(self) -> float: ...
    @property
    def outliers(self) -> str: ...
    @property
    def max_memory_gb(self) -> float: ...


@dataclass(frozen=True)
class Image:
    """One date's image file as its header tells: where it lies, its pixels and the bands
    taken from it (1-based, in the order of ``folder.bands``; None: all, in file order)."""

    path: str
    iso: str
    crs: CRS
    res: float
    bounds: tuple[float, float, float, float]
    width: int
    height: int
    dtype: str
    indexes: tuple[int, ...] | None

    @property
    def at(self) -> str:
        return f"{self.path} (date {self.iso})"


def check_image(path: str, iso: str, spec: FolderSettings, where: str) -> Image:
    image = f"{path} (date {iso})"
    with open_raster(path) as src:
        if src.crs is None:
            raise InputDataError(f"{path}: has no CRS; it cannot be placed on a region grid")
        dtype = np.dtype(src.dtypes[0])
        if dtype.kind not in "uif":
            raise InputDataError(
                f"{image}: {dtype} pixels; images hold integer DN or float reflectance"
            )
        indexes = band_indexes(image, src.count, src.descriptions, spec, where)
        natural = tuple(range(1, len(spec.bands) + 1))
        if indexes is not None and indexes != natural and indexes != spec.band_indexes:
            log.info("%s: bands %s taken as bands %s of the file (by their descriptions)",
                     image, ", ".join(spec.bands), ", ".join(map(str, indexes)))  # fmt: skip
        return Image(
            path, iso, src.crs, float(src.res[0]), tuple(src.bounds), src.width, src.height,
            dtype.name, indexes,
        )  # fmt: skip


def _kind(dtype: str) -> str:
    return "float" if np.dtype(dtype).kind == "f" else "integer"


def check_dtypes(images: Mapping[str, Image], where: str) -> None:
    """All dates integer (DN) or all float (reflectance): one ``scale`` and ``offset`` turn
    every date into DN, so a date of the other kind would come out wrong (a 0..1 float date
    among DN dates would be DN 1 everywhere).  The date whose kind differs from most of the
    others (from the earliest date's, on a tie) is refused, naming its file and date."""
    kinds = Counter(_kind(m.dtype) for m in images.values())
    if len(kinds) < 2:
        return
    first = images[min(images)]
    top = max(kinds.values())
    usual = _kind(first.dtype) if kinds[_kind(first.dtype)] == top else kinds.most_common(1)[0][0]
    odd = next(m for _, m in sorted(images.items()) if _kind(m.dtype) != usual)
    dtypes = sorted({m.dtype for m in images.values() if _kind(m.dtype) == usual})
    raise InputDataError(
        f"{odd.at}: {odd.dtype} pixels, but {kinds[usual]} of the {len(images)} dates of the "
        f"region are {usual} ({', '.join(dtypes)}); one {where}.scale and offset apply to "
        "every date, so this date would be scaled wrongly: convert it to the others' kind "
        "(DN or reflectance), or give it a region of its own"
    )


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    return min(a[2], b[2]) > max(a[0], b[0]) and min(a[3], b[3]) > max(a[1], b[1])


def _show(box: Sequence[float]) -> str:
    return "(" + ", ".join(f"{v:.0f}" for v in box) + ")"


def far_off(boxes: Mapping[str, Sequence[float]]) -> tuple[list[str], tuple[float, ...]]:
    """The dates whose footprint does not overlap the median footprint of all dates (each
    side's median; left, bottom, right, top in one CRS), and that median footprint.  It
    stands for where the series lies as long as fewer than half of the dates lie elsewhere."""
    median = tuple(float(v) for v in np.median(np.array(list(boxes.values()), float), axis=0))
    return sorted(iso for iso, box in boxes.items() if not _overlap(box, median)), median


def drop_outliers(
    images: dict[str, Image], boxes: Mapping[str, Sequence[float]], spec: FolderSettings, where: str
) -> list[str]:
    """The dates whose footprint lies off the others' (:func:`far_off`): an error naming the
    first (``outliers: error``) or left out with a warning (``drop``), which is returned.
    When half the dates or more lie apart there is no common footprint to judge by: an
    error either way."""
    far, median = far_off(boxes)
    if not far:
        return []
    if 2 * len(far) >= len(boxes):
        listed = "; ".join(f"{images[i].at}: {_show(boxes[i])}" for i in sorted(boxes))
        raise InputDataError(
            f"{where}.images: the images do not share a footprint ({len(far)} of "
            f"{len(boxes)} dates lie off the median footprint {_show(median)}): {listed}. "
            "A folder region is one series over one area: check the files' georeferencing"
        )
    for iso in far:
        image = images[iso]
        if spec.outliers == "error":
            raise InputDataError(
                f"{image.at}: its footprint {_show(boxes[iso])} is far off the other dates' "
                f"(median footprint {_show(median)}) and does not overlap it; a region grid "
                "covering both would be mostly empty. Fix its georeferencing, remove the "
                f"file, or leave such dates out with {where}.outliers: drop"
            )
        log.warning(
            "%s: its footprint %s is far off the other dates' (median footprint %s); "
            "left out (%s.outliers: drop)",
            image.at, _show(boxes[iso]), _show(median), where,
        )  # fmt: skip
    return far


def check_aligned(mask_path: str, image_path: str, image_crs: CRS, image_bounds: tuple) -> None:
    """A mask must be georeferenced and cover its image; then it can be warped onto it."""
    with open_raster(mask_path, "cloud mask") as src:
        if src.crs is None:
            raise InputDataError(
                f"{mask_path}: cloud mask has no CRS, so it cannot be aligned with {image_path}"
            )
        left, bottom, right, top = transform_bounds(src.crs, image_crs, *src.bounds)
    il, ib, ir, it = image_bounds
    w = max(0.0, min(right, ir) - max(left, il))
    h = max(0.0, min(top, it) - max(bottom, ib))
    cover = w * h / max((ir - il) * (it - ib), 1e-12)
    if cover < 0.99:
        raise InputDataError(
            f"{mask_path}: cloud mask covers {cover:.0%} of {image_path}; it is on another "
            "grid that cannot be aligned with the image"
        )


@dataclass
class ValueStats:
    """What one date's valid values were, strip after strip: how many (band values), how
    many of them outside :data:`PLAUSIBLE` reflectance, their range (in the file's units)
    and the pixels set to nodata for a non-finite value."""

    values: int = 0
    outside: int = 0
    low: float = math.inf
    high: float = -math.inf
    nonfinite: int = 0
    _bounds: tuple[float, float] = field(default=(-math.inf, math.inf), repr=False)

    @classmethod
    def for_scale(cls, scale: float, offset: float) -> ValueStats:
        """Counting outside the plausible range in the file's own units (scale > 0)."""
        lo, hi = ((v - offset) / scale for v in PLAUSIBLE)
        return cls(_bounds=(lo, hi))

    def add(self, data: np.ndarray, valid: np.ndarray) -> None:
        """Count a (bands, H, W) strip of values, NaN where not ``valid``."""
        n = int(np.count_nonzero(valid))
        if not n:
            return
        lo, hi = self._bounds
        self.values += n * data.shape[0]
        low, high = float(np.nanmin(data)), float(np.nanmax(data))
        self.low, self.high = min(self.low, low), max(self.high, high)
        if low < lo or high > hi:  # else none is outside: no need to count
            self.outside += int(np.count_nonzero(((data < lo) | (data > hi)) & valid))

    def check(self, image: Image, spec: FolderSettings, where: str) -> None:
        """Log the non-finite values; refuse a date whose values, scaled, are not plausible
        reflectance (InputDataError naming the file, the date and the keys)."""
        if self.nonfinite:
            log.warning(
                "%s: %d pixels with non-finite values (inf) on the region grid; set to nodata",
                image.at, self.nonfinite,
            )  # fmt: skip
        if not self.values:
            return
        scale, offset = spec.scale, spec.offset
        low, high = self.low * scale + offset, self.high * scale + offset
        how = (
            f"with {where}.scale {scale:g} and offset {offset:g} ({image.dtype} values "
            f"{self.low:.6g} to {self.high:.6g} give reflectance {low:.4g} to {high:.4g})"
        )
        share = self.outside / self.values
        if share > OUTSIDE_MAX:
            raise InputDataError(
                f"{image.at}: {share:.1%} of its valid values are outside the plausible "
                f"reflectance {PLAUSIBLE[0]:g} to {PLAUSIBLE[1]:g} {how}; is the scale right "
                "for this file (DN x 10000: 0.0001, reflectance 0..1: 1), or are nodata "
                f"pixels not declared ({where}.nodata)?"
            )
        if high < DARKEST_MAX:
            raise InputDataError(
                f"{image.at}: its brightest valid value is reflectance {high:.3g} {how}, "
                f"below {DARKEST_MAX:g}: every pixel would be DN 1; is the scale right for "
                "this file (reflectance 0..1 needs scale 1)?"
            )


def check_strip_memory(
    strips: Sequence[tuple[Any, list[str]]],
    spec: FolderSettings,
    region: str,
    where: str,
    acquisitions: int,
) -> None:
    """One row of tiles of every band is in memory at a time, of each of the most
    ``acquisitions`` of one date: refuse one that would not fit before reading a pixel."""
    widest = max(strips, key=lambda s: int(s[0].width) * int(s[0].height))[0]
    px = int(widest.width) * int(widest.height)
    bands = len(spec.bands)
    need = px * (bands * STRIP_BYTES_PER_BAND_PX + STRIP_BYTES_PER_PX)
    need += (acquisitions - 1) * px * (bands * ACQUISITION_BYTES_PER_BAND_PX
                                       + ACQUISITION_BYTES_PER_PX)  # fmt: skip
    of = f", {acquisitions} acquisitions of one date" if acquisitions > 1 else ""
    check_memory(
        need, spec.max_memory_gb, f"{where}.max_memory_gb",
        f"a row of tiles of the region grid ({widest.width} x {widest.height} px, "
        f"{bands} bands{of})", f"regions.{region}",
    )  # fmt: skip
