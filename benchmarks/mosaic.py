"""Mosaic throughput and memory: cloudfree's `max` rule with side layers vs rasterio.merge.

On the same overlapping tiles (13-band uint16, deflate, one CRS, aligned grids), four
writers of the same `max` mosaic, each checked to give the same pixels:

- cloudfree ``format: gtiff``: cloudfree.mosaic.region.mosaic_date(rule="max", fmt="gtiff"), the
  mosaic plus count, source, date and quality layers as tiled compressed GeoTIFFs without
  overviews, window by window in one pass;
- baseline "plain": rasterio.merge.merge(method="max") writing only the merged raster as the
  same kind of GeoTIFF (no overviews, no side layers): the issue's target compares these two;
- cloudfree ``format: cog`` (the default): the same mosaic and side layers as Cloud-Optimized
  GeoTIFFs with overviews;
- baseline "cog": the same rasterio.merge.merge(method="max"), its merged array then written
  exactly as cloudfree writes its mosaic (uncompressed tiled temporary file, average
  overviews, copy to a COG with cloudfree's own ``to_cog``), still without side layers.

The gtiff/plain and cog/cog ratios isolate the cost of cloudfree's window-by-window merge
and its four side layers; rasterio's cog/plain ratio is the cost of the COG format itself.
All get the same compression (deflate, predictor, level and threads per ``SETTINGS``).

Throughput is output megapixels per second (best of ``--repeat`` interleaved runs).  Peak
memory (max RSS of a fresh process) of cloudfree's mosaic (both formats) is measured on this
mosaic and on one with 10x as many tiles.  Usage::

    python benchmarks/mosaic.py [--tile 512] [--grid 3] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.merge import merge

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from process_memory import peak_rss_mb as peak_rss_mb_of

from cloudfree.config import section
from cloudfree.io import geotiff_profile, write_raster
from cloudfree.mosaic.region import mosaic_date
from cloudfree.mosaic.write import overview_factors, to_cog

BANDS = 13
# (deflate level, compression threads), the same for both; None = GDAL's default level 6.
SETTINGS = [(None, "1"), (1, "1"), (None, "ALL_CPUS")]


def make_tiles(root: Path, nx: int, ny: int, size: int, overlap: int, seed: int = 0) -> list[Path]:
    """nx x ny tiles of ``size`` px overlapping by ``overlap`` px, with per-date quality."""
    rng = np.random.default_rng(seed)
    step = size - overlap
    yy, xx = np.mgrid[0:size, 0:size]
    paths = []
    for j in range(ny):
        for i in range(nx):
            base = 1000 + 5 * (xx + i * step) + 3 * (yy + j * step)
            data = np.empty((BANDS, size, size), dtype=np.uint16)
            for b in range(BANDS):
                data[b] = base + 100 * b + rng.integers(0, 50, (size, size))
            x0, y0 = 500000.0 + 10 * i * step, 5000000.0 - 10 * j * step
            prof = geotiff_profile(
                crs="EPSG:32632", transform=Affine(10, 0, x0, 0, -10, y0), width=size,
                height=size, count=BANDS, dtype="uint16", nodata=0,
            )  # fmt: skip
            tile = f"T{j:02d}{i:02d}"
            path = write_raster(
                root / tile / "2021-05-01.tif", data, prof, tags={"DATE": "2021-05-01"}
            )
            quality = np.ones((size, size), np.uint8)
            quality[: size // 4, : size // 3] = 2
            write_raster(
                path.with_name("2021-05-01_quality.tif"), quality, {**prof, "nodata": None}
            )
            paths.append(path)
    return paths


def date_settings(**values: object) -> dict[str, object]:
    """mosaic_date's settings: the config's ``mosaic`` section (schema defaults) under
    ``values``."""
    s = section("mosaic", values)
    keys = ("rule", "crs", "resolution", "resampling", "compress", "block")
    return {k: s[k] for k in keys} | {"level": s["compress_level"], "fmt": s["format"]}


def run_cloudfree(
    paths: list[Path], dest: Path, level: int | None, threads: str, fmt: str = "cog"
) -> tuple[float, int]:
    settings = date_settings(rule="max", resampling="nearest", compress_level=level, format=fmt)
    t0 = time.perf_counter()
    mosaic_date(paths, dest, **settings, num_threads=threads)
    seconds = time.perf_counter() - t0
    with rasterio.open(dest) as src:
        return seconds, src.width * src.height


def run_rasterio(
    paths: list[Path], dest: Path, level: int | None, threads: str
) -> tuple[float, int]:
    kwds = {"tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
            "predictor": 2, "num_threads": threads}  # fmt: skip
    if level is not None:
        kwds["zlevel"] = level
    t0 = time.perf_counter()
    merge([str(p) for p in paths], method="max", dst_path=dest, dst_kwds=kwds)
    seconds = time.perf_counter() - t0
    with rasterio.open(dest) as src:
        return seconds, src.width * src.height


def run_rasterio_cog(
    paths: list[Path], dest: Path, level: int | None, threads: str
) -> tuple[float, int]:
    """rasterio's merge, written as the same COG with overviews as cloudfree's mosaic."""
    t0 = time.perf_counter()
    data, transform = merge([str(p) for p in paths], method="max")
    _, h, w = data.shape
    with rasterio.open(paths[0]) as src:
        crs, nodata = src.crs, src.nodata
    tmp = dest.with_name(dest.stem + "_tmp.tif")
    with rasterio.open(
        tmp, "w", driver="GTiff", crs=crs, transform=transform, width=w, height=h,
        count=data.shape[0], dtype=data.dtype, nodata=nodata, tiled=True, blockxsize=256,
        blockysize=256, compress="none", interleave="band",
    ) as dst:  # fmt: skip
        dst.write(data)
        dst.build_overviews(overview_factors(w, h), Resampling.average)
    to_cog(tmp, dest, "deflate", threads, level)
    seconds = time.perf_counter() - t0
    tmp.unlink()
    return seconds, w * h


def peak_rss_mb(paths_file: Path, dest: Path, fmt: str) -> float:
    """Max RSS (MB) of a fresh process that builds the mosaic of the listed tiles."""
    settings = date_settings(rule="max", resampling="nearest", format=fmt)
    return peak_rss_mb_of(
        "import json; from pathlib import Path; from cloudfree.mosaic.region import mosaic_date;"
        f"paths = [Path(p) for p in json.loads(Path({str(paths_file)!r}).read_text())];"
        f"mosaic_date(paths, Path({str(dest)!r}), **json.loads({json.dumps(settings)!r}))"
    )


def same_pixels(*paths: Path) -> None:
    """Every writer must give the same mosaic (a fast writer that differs proves nothing)."""
    with rasterio.open(paths[0]) as src:
        ref = src.read()
    for path in paths[1:]:
        with rasterio.open(path) as src:
            if not np.array_equal(src.read(), ref):
                raise SystemExit(f"{path} differs from {paths[0]}")


def mpx_s(px: int, seconds: float) -> float:
    return px / 1e6 / seconds


WRITERS = {
    "cloudfree_gtiff": lambda p, d, lv, th: run_cloudfree(p, d, lv, th, fmt="gtiff"),
    "rasterio_plain": run_rasterio,
    "cloudfree_cog": run_cloudfree,
    "rasterio_cog": run_rasterio_cog,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--grid", type=int, default=3, help="tiles per side of the base mosaic")
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "mosaic.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = make_tiles(root / "tiles", args.grid, args.grid, args.tile, args.overlap)
        speed = []
        for level, threads in SETTINGS:
            runs: dict[str, list[tuple[float, int]]] = {k: [] for k in WRITERS}
            for r in range(args.repeat):  # interleaved, best of each: the machine is shared
                tag = f"{level}{threads}{r}"
                out = {
                    "cloudfree_gtiff": root / f"gtiff{tag}" / "2021-05-01.tif",
                    "rasterio_plain": root / f"rio{tag}.tif",
                    "cloudfree_cog": root / f"cog{tag}" / "2021-05-01.tif",
                    "rasterio_cog": root / f"riocog{tag}.tif",
                }
                for name, run in WRITERS.items():
                    runs[name].append(run(paths, out[name], level, threads))
                same_pixels(*out.values())
                for f in root.glob(f"*{tag}*"):  # nothing reused between repeats
                    shutil.rmtree(f) if f.is_dir() else f.unlink()
            best = {k: min(v) for k, v in runs.items()}
            rate = {k: mpx_s(px, t) for k, (t, px) in best.items()}
            px = best["cloudfree_cog"][1]
            speed.append({
                "compress": "deflate", "level": level or "default (6)", "threads": threads,
                **{f"{k}_s": t for k, (t, _) in best.items()},
                **{f"{k}_mpx_per_s": v for k, v in rate.items()},
                "ratio_cloudfree_gtiff_vs_rasterio_plain":
                    rate["cloudfree_gtiff"] / rate["rasterio_plain"],
                "ratio_cloudfree_cog_vs_rasterio_cog":
                    rate["cloudfree_cog"] / rate["rasterio_cog"],
                "ratio_cloudfree_cog_vs_rasterio_plain":
                    rate["cloudfree_cog"] / rate["rasterio_plain"],
                "ratio_rasterio_cog_vs_rasterio_plain":
                    rate["rasterio_cog"] / rate["rasterio_plain"],
            })  # fmt: skip
            print(json.dumps(speed[-1]))
        # Memory: the base mosaic and one with 10x as many tiles (10 * grid^2 tiles).
        big = make_tiles(root / "big", args.grid * 10, args.grid, args.tile, args.overlap, seed=1)
        lists = {}
        for name, ps in (("base", paths), ("x10", big)):
            lists[name] = root / f"{name}.json"
            lists[name].write_text(json.dumps([str(p) for p in ps]))
        rss = {
            (name, fmt): peak_rss_mb(f, root / f"mem_{name}_{fmt}" / "m.tif", fmt)
            for name, f in lists.items()
            for fmt in ("cog", "gtiff")
        }
        with rasterio.open(root / "mem_x10_cog" / "m.tif") as src:
            px_big = src.width * src.height
    result = {
        "tiles": len(paths), "tile_px": args.tile, "bands": BANDS, "overlap_px": args.overlap,
        "output_mpx": px / 1e6,
        "speed": speed,
        "x10_output_mpx": px_big / 1e6,
        **{
            f"peak_rss_mb_{fmt}_{name}": rss[(name, fmt)]
            for fmt in ("cog", "gtiff") for name in ("base", "x10")
        },
        **{
            f"peak_rss_ratio_x10_{fmt}": rss[("x10", fmt)] / rss[("base", fmt)]
            for fmt in ("cog", "gtiff")
        },
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "gdal": rasterio.__gdal_version__, "rasterio": rasterio.__version__,
        "self_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
