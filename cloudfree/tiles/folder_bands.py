"""Which bands of a ``folder`` image file are the configured ones: by description or position.

A file whose bands all have descriptions is read by them, in any order (:func:`band_key`,
:func:`description_keys`: ``B04``, ``b4`` and ``B04 L1C TOA reflectance`` all name B04); a
configured band that is not there is an error naming the file and date.  A file without
descriptions is read by position (``folder.band_indexes``, or all bands in order).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from cloudfree.errors import InputDataError


class BandSettings(Protocol):
    """The keys of the ``folder`` section that say which bands to take (a FolderSpec)."""

    @property
    def bands(self) -> tuple[str, ...]: ...
    @property
    def band_indexes(self) -> tuple[int, ...] | None: ...


def band_key(name: str) -> str:
    """A band name as files spell it, made comparable: case and spaces ignored, ``B1`` and
    ``B01`` alike (``B8A`` stays)."""
    text = name.strip().upper()
    m = re.fullmatch(r"B0*(\d+)(A?)", text)
    return f"B{int(m[1])}{m[2]}" if m else text


def description_keys(description: str) -> set[str]:
    """The band names a description gives: itself, or its first word (``B04 L1C TOA
    reflectance x10000`` names B04)."""
    words = [w for w in re.split(r"[\s_:;,()\[\]/=-]+", description) if w]
    keys = {band_key(description)}
    if words:
        keys.add(band_key(words[0]))
    return keys


def band_indexes(
    image: str, count: int, descriptions: Sequence[str | None], spec: BandSettings, where: str
) -> tuple[int, ...] | None:
    """The 1-based bands of ``folder.bands`` in a file of ``count`` bands (``image`` names the
    file and date in errors).

    A file whose bands all have descriptions is read by them: each configured band is looked
    up (:func:`description_keys`: ``B04``, ``b4`` or ``B04 L1C TOA reflectance`` name B04),
    whatever the file's order; one that is not there is an error, unless ``band_indexes`` is
    set and the descriptions name none of the configured bands (another vocabulary: the
    configured positions hold).  A file without descriptions is read by position
    (``band_indexes``, or all bands in order)."""
    names = [str(d).strip() if d else "" for d in descriptions]
    wanted = ", ".join(spec.bands)
    if not all(names):
        need = max(spec.band_indexes) if spec.band_indexes else len(spec.bands)
        ok = count >= need if spec.band_indexes else count == need
        if not ok:
            raise InputDataError(
                f"{image}: {count} bands, but {where}.bands lists {len(spec.bands)} ({wanted})"
                + (f" and band_indexes go up to {need}" if spec.band_indexes else "")
            )
        return spec.band_indexes
    found: dict[str, list[int]] = {}
    for i, name in enumerate(names, start=1):
        for key in description_keys(name):
            found.setdefault(key, []).append(i)
    missing = [b for b in spec.bands if band_key(b) not in found]
    if missing and spec.band_indexes and len(missing) == len(spec.bands):
        return spec.band_indexes
    if missing:
        raise InputDataError(
            f"{image}: band descriptions {', '.join(names)}; {', '.join(missing)} of "
            f"{where}.bands ({wanted}) missing. Bands are taken by their descriptions when a "
            f"file has them: name the bands as the file does, or give {where}.band_indexes "
            "when the file's names are of another kind"
        )
    twice = [b for b in spec.bands if len(found[band_key(b)]) > 1]
    if twice:
        raise InputDataError(
            f"{image}: band descriptions {', '.join(names)} name {', '.join(twice)} more "
            "than once; which band is meant is not clear"
        )
    indexes = tuple(found[band_key(b)][0] for b in spec.bands)
    if spec.band_indexes and tuple(spec.band_indexes) != indexes:
        raise InputDataError(
            f"{image}: its band descriptions put {wanted} at bands "
            f"{', '.join(map(str, indexes))}, but {where}.band_indexes says "
            f"{', '.join(map(str, spec.band_indexes))}; correct band_indexes, or drop it to "
            "take the bands by their descriptions"
        )
    return indexes
