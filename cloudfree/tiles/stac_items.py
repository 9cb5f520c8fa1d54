"""What a STAC catalogue says of its items, checked: ids, dates, cloud cover, bbox, asset hrefs.

:func:`parse_item` takes a feature of a search page to a pystac Item, an InputDataError
naming the item when it has no date, a cloud cover that is not a percentage or a malformed
bbox (:func:`item_day`, :func:`cloud_cover`, :func:`item_bbox`); :func:`asset_href` is an
asset's href only if the host policy lets it be read; :func:`items_by_date` groups the items
(granules) by day, in time order (:func:`item_time`).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pystac import Item, STACError, STACTypeError

from cloudfree.errors import InputDataError
from cloudfree.tiles.hosts import HostPolicy


def parse_item(feature: Any, url: str) -> Item:
    """A STAC item of a search page; what it lacks or has wrong is an InputDataError
    naming the item (or the API, for a feature without an id)."""
    if not isinstance(feature, dict) or not isinstance(feature.get("id"), str):
        text = str(feature)[:120]
        raise InputDataError(f"STAC API {url}: a search result without an id: {text}")
    ident = feature["id"]
    props = feature.get("properties")
    if not isinstance(props, dict):
        raise InputDataError(f"STAC item {ident} from {url}: no properties object")
    if props.get("datetime") is None and not props.get("start_datetime"):
        raise InputDataError(
            f"STAC item {ident} from {url}: datetime is null and there is no "
            "start_datetime; the item's date is unknown"
        )
    try:
        item = Item.from_dict(feature)
    except (STACError, STACTypeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputDataError(
            f"STAC item {ident} from {url}: not a valid STAC item ({type(exc).__name__}: {exc})"
        ) from None
    item_day(item)
    cloud_cover(item)
    item_bbox(item)
    return item


def item_time(item: Item) -> datetime:
    """The item's acquisition time (``datetime``, or ``start_datetime`` where it is null)."""
    try:
        when = item.datetime or item.common_metadata.start_datetime
    except (ValueError, TypeError, OverflowError) as exc:
        raise InputDataError(f"STAC item {item.id}: start_datetime is not a date ({exc})") from None
    if when is None:
        raise InputDataError(
            f"STAC item {item.id}: datetime is null and there is no start_datetime; the "
            "item's date is unknown"
        )
    return when


def item_day(item: Item) -> str:
    """The item's ISO date (of ``datetime``, or of ``start_datetime`` where it is null)."""
    return item_time(item).date().isoformat()


def cloud_cover(item: Item) -> float:
    """The item's ``eo:cloud_cover`` in percent (0 where it has none)."""
    value = item.properties.get("eo:cloud_cover", 0.0)
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        cover = float(value)
    except ValueError:
        cover = math.nan
    if not 0.0 <= cover <= 100.0:  # NaN too
        raise InputDataError(
            f"STAC item {item.id}: eo:cloud_cover {value!r} is not a percentage (a number "
            "from 0 to 100)"
        )
    return cover


def item_bbox(item: Item) -> tuple[float, float, float, float] | None:
    """The item's (west, south, east, north) in degrees (of a 2D or 3D bbox), if it has one."""
    box = item.bbox
    if box is None:
        return None
    if (
        not isinstance(box, list | tuple)
        or len(box) not in (4, 6)
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in box)
    ):
        raise InputDataError(f"STAC item {item.id}: bbox {box!r} is not 4 or 6 numbers")
    w, s, e, n = (box[0], box[1], box[3], box[4]) if len(box) == 6 else box
    return float(w), float(s), float(e), float(n)


def asset_href(item: Item, key: str, policy: HostPolicy) -> str:
    """The href of an item's asset, if it may be read (see
    :class:`~cloudfree.tiles.hosts.HostPolicy`)."""
    href = item.assets[key].href
    problem = policy.asset_problem(href)
    if problem:
        raise InputDataError(f"STAC item {item.id}: asset {key!r} href {href!r} {problem}")
    return href


def items_by_date(items: list[Item], max_items: int | None) -> dict[str, list[Item]]:
    """ISO date -> that day's items (granules, overlapping orbits), in time order (then id:
    the order ``same_date: first`` merges them in); ``max_items`` least cloudy dates kept
    (by their least cloudy item's scene cloud cover)."""
    days: dict[str, list[Item]] = {}
    for it in sorted(items, key=lambda i: (item_time(i).timestamp(), i.id)):
        days.setdefault(item_day(it), []).append(it)
    if max_items is not None:
        cover = {d: min(cloud_cover(i) for i in v) for d, v in days.items()}
        days = {d: days[d] for d in sorted(cover, key=cover.__getitem__)[:max_items]}
    return dict(sorted(days.items()))
