"""The TIFF layout of a written mosaic, read from its bytes: every image (full resolution,
then overviews) with its size and tiles, and the checks of a Cloud-Optimized GeoTIFF that
GDAL's ``validate_cloud_optimized_geotiff.py`` makes, reimplemented minimally:

- every image is tiled, the first IFD is the full-resolution image, near the file start;
- the overview IFDs follow it in order of decreasing size, each half the one before;
- every IFD comes before any tile data;
- the tile data of the smallest overview comes first and the full resolution's last, and
  within each image the tiles follow each other in row-major order.
"""

from __future__ import annotations

import itertools
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path

# TIFF tags read here.
SUBFILE, WIDTH, HEIGHT = 254, 256, 257
TILE_WIDTH, TILE_HEIGHT, TILE_OFFSETS, TILE_COUNTS = 322, 323, 324, 325
# Field types: struct code and size.
TYPES = {1: "B", 3: "H", 4: "I", 16: "Q"}


@dataclass
class Image:
    """One IFD: its offset in the file, size, tile size, tile offsets and byte counts."""

    ifd: int
    width: int
    height: int
    tile: tuple[int, int] | None
    reduced: bool
    offsets: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)


@dataclass
class Layout:
    """A TIFF's images in IFD order and GDAL's structural metadata (``ghost``)."""

    images: list[Image]
    ghost: dict[str, str]

    @property
    def overviews(self) -> list[tuple[int, int]]:
        """(width, height) of the overviews, in IFD order."""
        return [(i.width, i.height) for i in self.images[1:]]

    def errors(self) -> list[str]:
        """What keeps the file from being a valid COG (empty if it is one)."""
        out = []
        main = self.images[0]
        if any(i.tile is None for i in self.images):
            out.append("not tiled")
        if main.reduced or main.ifd > 300:
            out.append(
                f"the first IFD is at byte {main.ifd}, not the full resolution's at the start"
            )
        for k, (a, b) in enumerate(itertools.pairwise(self.images)):
            if not b.reduced or b.ifd < a.ifd:
                out.append(f"overview {k} is not a reduced image after the one before")
            if (b.width, b.height) != (math.ceil(a.width / 2), math.ceil(a.height / 2)):
                out.append(f"overview {k} is {b.width} x {b.height}, not half the one before")
        data = [o for i in self.images for o in i.offsets if o]
        if data and max(i.ifd for i in self.images) > min(data):
            out.append("an IFD comes after tile data")
        firsts = [min((o for o in i.offsets if o), default=0) for i in self.images]
        if any(a <= b for a, b in itertools.pairwise(firsts) if a and b):
            out.append("tile data is not ordered from the smallest overview to full resolution")
        for k, image in enumerate(self.images):
            used = [o for o in image.offsets if o]
            if used != sorted(used):
                out.append(f"the tiles of image {k} are not in row-major order")
        if self.ghost.get("LAYOUT") != "IFDS_BEFORE_DATA":
            out.append("no GDAL structural metadata saying LAYOUT=IFDS_BEFORE_DATA")
        return out


def read_layout(path: Path) -> Layout:
    """The images of the TIFF (or BigTIFF) ``path`` and its structural metadata."""
    raw = Path(path).read_bytes()
    order = {b"II": "<", b"MM": ">"}[raw[:2]]
    (magic,) = struct.unpack_from(order + "H", raw, 2)
    big = magic == 43
    if big:
        (first,) = struct.unpack_from(order + "Q", raw, 8)
        header, entry, count_code, value_size = 16, 20, "Q", 8
    else:
        (first,) = struct.unpack_from(order + "I", raw, 4)
        header, entry, count_code, value_size = 8, 12, "H", 4
    images = []
    offset = first
    while offset:
        (n,) = struct.unpack_from(order + count_code, raw, offset)
        start = offset + struct.calcsize(count_code)
        tags: dict[int, list[int]] = {}
        for k in range(n):
            pos = start + k * entry
            tag, kind = struct.unpack_from(order + "HH", raw, pos)
            (count,) = struct.unpack_from(order + ("Q" if big else "I"), raw, pos + 4)
            if kind not in TYPES:
                continue
            code = TYPES[kind]
            where = pos + (12 if big else 8)
            if struct.calcsize(code) * count > value_size:
                (where,) = struct.unpack_from(order + ("Q" if big else "I"), raw, where)
            tags[tag] = list(struct.unpack_from(f"{order}{count}{code}", raw, where))
        tile = (tags[TILE_WIDTH][0], tags[TILE_HEIGHT][0]) if TILE_WIDTH in tags else None
        images.append(
            Image(
                offset,
                tags[WIDTH][0],
                tags[HEIGHT][0],
                tile,
                bool(tags.get(SUBFILE, [0])[0] & 1),
                tags.get(TILE_OFFSETS, []),
                tags.get(TILE_COUNTS, []),
            )
        )
        (offset,) = struct.unpack_from(order + ("Q" if big else "I"), raw, start + n * entry)
    return Layout(images, _ghost(raw[header : header + 1024]))


def _ghost(text: bytes) -> dict[str, str]:
    """GDAL's structural metadata right after the header (``KEY=VALUE`` lines)."""
    if not text.startswith(b"GDAL_STRUCTURAL_METADATA_SIZE="):
        return {}
    size = int(text[30:36])
    body = text[text.index(b"\n") + 1 : text.index(b"\n") + 1 + size].decode("ascii", "replace")
    return dict(line.split("=", 1) for line in body.splitlines() if "=" in line)
