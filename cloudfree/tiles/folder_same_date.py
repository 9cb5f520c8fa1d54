"""The acquisitions of one date in a ``folder`` region: paired with their masks, checked
against each other.

A date may have several image files (two granules of one overpass, overlapping orbits, two
processing baselines); each is one acquisition, keyed by ``(date, path)`` (:data:`Key`),
and they are merged on the tile grid (:mod:`cloudfree.tiles.same_date`).  A date's mask
(or probability) files are paired with its images in file-name order, so they must be as
many (:func:`pair_by_date`; the pair is then checked to cover the same ground,
:func:`~cloudfree.tiles.folder_checks.check_aligned`, naming both files).  The images of
one date must all be integers (DN) or all floats (reflectance), and an image refused by
:func:`~cloudfree.tiles.folder_checks.check_image` is named with the other files of its
date (:func:`check_images`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from cloudfree.errors import InputDataError
from cloudfree.tiles.folder_checks import FolderSettings, Image, check_image

Key = tuple[str, str]  # one acquisition: (ISO date, image path)


def pair_by_date(
    images: Mapping[str, Sequence[str]], others: Mapping[str, Sequence[str]], what: str
) -> dict[Key, str]:
    """Each acquisition's mask or probability file (``what``: the key, like
    ``regions.r.folder.masks``): a date's files paired with its images in file-name order."""
    out: dict[Key, str] = {}
    for iso, paths in images.items():
        files = others.get(iso, ())
        if not files:
            raise InputDataError(f"{paths[0]}: no cloud mask or probability file for date {iso}")
        if len(files) != len(paths):
            raise InputDataError(
                f"date {iso}: {len(paths)} image files ({', '.join(paths)}) but {len(files)} "
                f"{what} files ({', '.join(files)}); each acquisition of a date needs its own, "
                "paired in file-name order"
            )
        out.update({(iso, path): other for path, other in zip(paths, files, strict=True)})
    return out


def check_images(
    paths: Mapping[str, Sequence[str]], spec: FolderSettings, where: str
) -> dict[Key, Image]:
    """Every acquisition's header checked (:func:`~cloudfree.tiles.folder_checks.check_image`;
    an error names the other files of the date too), and the images of one date all
    integers or all floats (an InputDataError naming both files)."""
    images: dict[Key, Image] = {}
    for iso in sorted(paths):
        files = paths[iso]
        for path in files:
            try:
                images[iso, path] = check_image(path, iso, spec, where)
            except InputDataError as exc:
                others = [p for p in files if p != path]
                if not others:
                    raise
                raise InputDataError(
                    f"{exc} (the other acquisitions of date {iso}: {', '.join(others)})"
                ) from None
        first = images[iso, files[0]]
        for path in files[1:]:
            image = images[iso, path]
            if _kind(image.dtype) != _kind(first.dtype):
                raise InputDataError(
                    f"{image.path} and {first.path}: both date {iso}, but {image.dtype} and "
                    f"{first.dtype} pixels; the acquisitions of one date are merged pixel by "
                    "pixel with one scale and offset: convert one to the other's kind (DN or "
                    "reflectance)"
                )
    return images


def _kind(dtype: str) -> str:
    return "float" if np.dtype(dtype).kind == "f" else "integer"


def by_date(keys: Sequence[Key]) -> dict[str, list[Key]]:
    """The acquisitions of each date, dates in order, each date's in file-name order."""
    out: dict[str, list[Key]] = {}
    for key in keys:
        out.setdefault(key[0], []).append(key)
    return {iso: sorted(out[iso], key=lambda k: (Path(k[1]).name, k[1])) for iso in sorted(out)}
