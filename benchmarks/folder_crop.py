"""Tiles cropped per second by the ``folder`` source, against a plain rasterio read.

    python benchmarks/folder_crop.py [--size 1024] [--dates 6] [--tile 128]

Writes a series of per-date 13-band uint16 GeoTIFFs (deflate, tiled, as delivered by most
tools) with cloud masks to a temporary folder, then times

- ``folder_tiles``: warp onto the region grid, crop into tiles, write every tile and date
  (image + mask GeoTIFF), with the valid-fraction and split bookkeeping;
- the floor: rasterio reading the same pixels (every image and mask, whole) and nothing else;
- memory: peak RSS of a fresh process cropping 2 dates of ``--size`` px images and of images
  2x and 4x as wide and high (4x and 16x the area); dates are warped one row of tiles at a
  time, so memory follows the width, not the area.

Prints and writes benchmarks/results/folder_crop.json (tiles per second, seconds, ratio).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from process_memory import peak_rss_mb as peak_rss_mb_of

from cloudfree.config import source_settings
from cloudfree.tiles.folder import folder_tiles


def make_series(root: Path, size: int, dates: int) -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(500, 4000, size=(13, size, size), dtype=np.uint16)
    for i in range(dates):
        stamp = f"2021{1 + i % 12:02d}{5 + i // 12:02d}"
        prof = dict(
            driver="GTiff", width=size, height=size, crs="EPSG:32737", compress="deflate",
            transform=Affine(10, 0, 500000, 0, -10, 8300000), tiled=True,
            blockxsize=256, blockysize=256,
        )  # fmt: skip
        img = base + rng.integers(0, 200, size=base.shape, dtype=np.uint16)
        with rasterio.open(root / f"S2_{stamp}_L1C.tif", "w", count=13, dtype="uint16",
                           nodata=0, **prof) as dst:  # fmt: skip
            dst.write(img)
        mask = (rng.random((size, size)) < 0.3).astype(np.uint8)
        with rasterio.open(root / f"CLD_{stamp}.tif", "w", count=1, dtype="uint8", nodata=255,
                           **prof) as dst:  # fmt: skip
            dst.write(mask, 1)


def config(root: Path, tile: int) -> dict:
    """The resolved ``folder`` section of the series in ``root``."""
    return source_settings("folder", {
        "images": str(root / "S2_*.tif"), "masks": str(root / "CLD_*.tif"),
        "date_regex": r"_(\d{8})", "tile_size": tile, "overlap": 0, "min_valid": 0.0,
    })  # fmt: skip


def peak_rss_mb(root: Path, size: int, tile: int) -> float:
    """Max RSS (MB) of a fresh process cropping 2 dates of ``size`` px images."""
    series = root / f"mem{size}"
    series.mkdir()
    make_series(series, size, 2)
    return peak_rss_mb_of(
        "from pathlib import Path; from cloudfree.tiles.folder import folder_tiles;"
        f"folder_tiles('bench', {config(series, tile)!r}, Path({str(series / 'out')!r}))"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=1024, help="image side in pixels")
    ap.add_argument("--dates", type=int, default=6)
    ap.add_argument("--tile", type=int, default=128, help="tile side in pixels")
    ap.add_argument("--repeat", type=int, default=3, help="best of N timings")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="folder-crop-") as tmp:
        root = Path(tmp)
        make_series(root, args.size, args.dates)
        cfg = config(root, args.tile)
        crop, read = [], []
        for k in range(args.repeat):
            t0 = time.perf_counter()
            rows = folder_tiles("bench", cfg, root / f"out{k}")
            crop.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for path in sorted(root.glob("*.tif")):
                with rasterio.open(path) as src:
                    src.read()
            read.append(time.perf_counter() - t0)
        n = len(rows)
        rss = {f: peak_rss_mb(root, f * args.size, args.tile) for f in (1, 2, 4)}
    result = {
        "command": "python benchmarks/folder_crop.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, py {platform.python_version()}",
        "image_px": args.size, "dates": args.dates, "tile_px": args.tile, "tile_dates": n,
        "crop_seconds": round(min(crop), 3),
        "read_seconds": round(min(read), 3),
        "tiles_per_second": round(n / min(crop), 1),
        "read_only_tiles_per_second": round(n / min(read), 1),
        "crop_over_read": round(min(crop) / min(read), 2),
        "peak_rss_mb_2_dates": {f"{f * args.size} px": round(v, 1) for f, v in rss.items()},
        "peak_rss_ratio_4x_area": round(rss[2] / rss[1], 2),
        "peak_rss_ratio_16x_area": round(rss[4] / rss[1], 2),
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    out = REPO / "benchmarks/results/folder_crop.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
