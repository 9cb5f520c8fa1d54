"""Mosaic throughput and memory: cloudfree's `max` rule with side layers vs rasterio.merge.

On the same overlapping tiles (13-band uint16, deflate, one CRS, aligned grids), in one
process, interleaved, writers of the same `max` mosaic, each checked to give the same pixels:

- cloudfree ``format: gtiff``: cloudfree.mosaic.region.mosaic_date(rule="max", fmt="gtiff"), the
  mosaic plus count, source, date and quality layers as tiled compressed GeoTIFFs without
  overviews, window by window in one pass;
- (a) "rasterio_plain": rasterio.merge.merge(method="max") writing only the merged raster as
  the same kind of GeoTIFF (no overviews, no side layers);
- cloudfree ``format: cog`` (the default): the same mosaic and side layers as Cloud-Optimized
  GeoTIFFs with overviews;
- (b) "rasterio_cog": the same merge, its merged array written as a COG with the same
  settings in the quickest way found with rasterio and GDAL alone: an uncompressed tiled
  temporary GeoTIFF, average overviews built on it, one copy by GDAL's COG driver with the
  same compression, predictor, level, 256 px blocks and threads that takes them over (GDAL's
  COG driver fed from memory, ``merge(dst_kwds={"driver": "COG"})``, is slower: it builds
  compressed overviews in a temporary file, then copies them);
- (c) "rasterio_cog_sides": (b) plus the four side layers (the arrays of cloudfree's output,
  read before the clock starts) written the same way (nearest overviews), one after the
  other: the fair comparison of the default format.

Throughput is output megapixels per second (best of ``--repeat`` interleaved runs); the load
average is recorded with each setting (the CPU is shared).  ``alternatives`` times the
cloudfree COG writer's own choices the same way: GDAL's block cache (``cache_mb``) and,
on the reference's COG copy alone, the predictor.  Peak memory (max RSS of a fresh process)
of cloudfree's mosaic (both formats) is measured on this mosaic and on one with 10x as many
tiles.  Usage::

    python benchmarks/mosaic.py [--tile 512] [--grid 3] [--repeat 3] [--no-memory]
"""

from __future__ import annotations

import argparse
import functools
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
import rasterio.shutil
from affine import Affine
from rasterio.enums import Resampling
from rasterio.merge import merge

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from process_memory import peak_rss_mb as peak_rss_mb_of

import cloudfree.mosaic.region as region_module
from cloudfree.config import section
from cloudfree.io import geotiff_profile, write_raster
from cloudfree.mosaic.region import mosaic_date
from cloudfree.mosaic.write import SIDE_LAYERS, overview_factors, side_paths

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


def now() -> tuple[float, float]:
    """Wall clock and this process's CPU time (all threads)."""
    return time.perf_counter(), time.process_time()


def since(t0: tuple[float, float]) -> tuple[float, float]:
    """Wall and CPU seconds since ``t0``."""
    wall, cpu = now()
    return wall - t0[0], cpu - t0[1]


def run_cloudfree(
    paths: list[Path], dest: Path, level: int | None, threads: str, fmt: str = "cog",
    cache_mb: int | None = None,
) -> tuple[float, float, int]:  # fmt: skip
    """cloudfree's mosaic_date; ``cache_mb``: its writer's GDAL block cache instead of the
    writer's default."""
    settings = date_settings(rule="max", resampling="nearest", compress_level=level, format=fmt)
    original = region_module.write_mosaic
    if cache_mb is not None:
        region_module.write_mosaic = functools.partial(original, cache_mb=cache_mb)
    try:
        t0 = now()
        mosaic_date(paths, dest, **settings, num_threads=threads)
        seconds = since(t0)
    finally:
        region_module.write_mosaic = original
    with rasterio.open(dest) as src:
        return (*seconds, src.width * src.height)


def run_rasterio(
    paths: list[Path], dest: Path, level: int | None, threads: str
) -> tuple[float, float, int]:
    kwds = {"tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate",
            "predictor": 2, "num_threads": threads}  # fmt: skip
    if level is not None:
        kwds["zlevel"] = level
    t0 = now()
    merge([str(p) for p in paths], method="max", dst_path=dest, dst_kwds=kwds)
    seconds = since(t0)
    with rasterio.open(dest) as src:
        return (*seconds, src.width * src.height)


def cog_copy_options(level: int | None, threads: str, predictor: str = "YES") -> dict:
    """GDAL's COG driver with the settings cloudfree's COGs get (taking over overviews)."""
    opts = {
        "driver": "COG", "blocksize": "256", "compress": "DEFLATE", "predictor": predictor,
        "BIGTIFF": "IF_SAFER", "OVERVIEWS": "FORCE_USE_EXISTING", "NUM_THREADS": threads,
    }  # fmt: skip
    if level is not None:
        opts["level"] = str(level)
    return opts


def write_cog(data: np.ndarray, dest: Path, profile: dict, kind: Resampling, opts: dict) -> None:
    """``data`` as a COG: uncompressed tiled temporary file, overviews, one COG copy."""
    _, h, w = data.shape
    tmp = dest.with_name(dest.stem + "_tmp.tif")
    with rasterio.open(
        tmp, "w", driver="GTiff", width=w, height=h, count=data.shape[0], dtype=data.dtype,
        tiled=True, blockxsize=256, blockysize=256, compress="none", interleave="band",
        **profile,
    ) as dst:  # fmt: skip
        dst.write(data)
        dst.build_overviews(overview_factors(w, h), kind)
    rasterio.shutil.copy(tmp, dest, **opts)
    tmp.unlink()


def run_rasterio_cog(
    paths: list[Path], dest: Path, level: int | None, threads: str,
    sides: dict[str, tuple[np.ndarray, dict]] | None = None, predictor: str = "YES",
) -> tuple[float, float, int]:  # fmt: skip
    """(b): rasterio's merge written as a COG; with ``sides`` (c): and those side layers
    (``{name: (array, {"nodata": ...})}``) written the same way, nearest overviews."""
    with rasterio.open(paths[0]) as src:
        crs, nodata = src.crs, src.nodata
    opts = cog_copy_options(level, threads, predictor)
    t0 = now()
    data, transform = merge([str(p) for p in paths], method="max")
    profile = {"crs": crs, "transform": transform}
    for name, (array, extra) in (sides or {}).items():
        write_cog(array[None], side_paths(dest)[name], profile | extra, Resampling.nearest, opts)
    write_cog(data, dest, profile | {"nodata": nodata}, Resampling.average, opts)
    seconds = since(t0)
    return (*seconds, data.shape[1] * data.shape[2])


def read_sides(dest: Path) -> dict[str, tuple[np.ndarray, dict]]:
    """The side layers of a cloudfree mosaic as (array, nodata) for the reference (c)."""
    out = {}
    for name, path in side_paths(dest).items():
        with rasterio.open(path) as src:
            out[name] = (src.read(1), {"nodata": SIDE_LAYERS[name][1]})
    return out


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


def load() -> float:
    return round(os.getloadavg()[0], 2)


WRITERS = {
    "cloudfree_gtiff": lambda p, d, lv, th: run_cloudfree(p, d, lv, th, fmt="gtiff"),
    "rasterio_plain": run_rasterio,
    "cloudfree_cog": run_cloudfree,
    "rasterio_cog": run_rasterio_cog,
}


def compare(paths: list[Path], root: Path, level: int | None, threads: str, repeat: int) -> dict:
    """One setting: every writer ``repeat`` times, interleaved, best of each."""
    runs: dict[str, list[tuple[float, float, int]]] = {}
    loads = [load()]
    sides = None
    for r in range(repeat):
        tag = f"{level}{threads}{r}"
        out = {
            "cloudfree_gtiff": root / f"gtiff{tag}" / "2021-05-01.tif",
            "rasterio_plain": root / f"rio{tag}.tif",
            "cloudfree_cog": root / f"cog{tag}" / "2021-05-01.tif",
            "rasterio_cog": root / f"riocog{tag}" / "2021-05-01.tif",
            "rasterio_cog_sides": root / f"riosides{tag}" / "2021-05-01.tif",
        }
        for o in out.values():
            o.parent.mkdir(exist_ok=True)
        for name, dest in out.items():
            if name == "rasterio_cog_sides":
                runs.setdefault(name, []).append(
                    run_rasterio_cog(paths, dest, level, threads, sides)
                )
            else:
                runs.setdefault(name, []).append(WRITERS[name](paths, dest, level, threads))
            if name == "cloudfree_cog":
                sides = read_sides(dest)
        same_pixels(*out.values())
        for layer in SIDE_LAYERS:  # (c) wrote cloudfree's side layers: check the copy
            same_pixels(
                *(side_paths(out[n])[layer] for n in ("cloudfree_cog", "rasterio_cog_sides"))
            )
        for f in root.glob(f"*{tag}*"):  # nothing reused between repeats
            shutil.rmtree(f) if f.is_dir() else f.unlink()
        loads.append(load())
    best = {k: min(v) for k, v in runs.items()}  # by wall time
    cpu = {k: min(c for _, c, _ in v) for k, v in runs.items()}
    px = best["cloudfree_cog"][2]
    rate = {k: mpx_s(px, t) for k, (t, _, px) in best.items()}
    ratio = {
        "cloudfree_gtiff_vs_rasterio_plain": ("cloudfree_gtiff", "rasterio_plain"),
        "cloudfree_cog_vs_rasterio_cog_sides": ("cloudfree_cog", "rasterio_cog_sides"),
        "cloudfree_cog_vs_rasterio_cog": ("cloudfree_cog", "rasterio_cog"),
        "cloudfree_cog_vs_rasterio_plain": ("cloudfree_cog", "rasterio_plain"),
        "rasterio_cog_vs_rasterio_plain": ("rasterio_cog", "rasterio_plain"),
    }
    return {
        "compress": "deflate", "level": level or "default (6)", "threads": threads,
        **{f"{k}_s": t for k, (t, _, _) in best.items()},
        **{f"{k}_cpu_s": c for k, c in cpu.items()},
        **{f"{k}_mpx_per_s": v for k, v in rate.items()},
        **{f"ratio_{k}": rate[a] / rate[b] for k, (a, b) in ratio.items()},
        # throughput per CPU second: the shared CPU's load barely moves it (one thread)
        **{f"cpu_ratio_{k}": cpu[b] / cpu[a] for k, (a, b) in ratio.items()},
        "loadavg_1min": loads, "output_mpx": px / 1e6,
    }  # fmt: skip


def alternatives(paths: list[Path], root: Path, repeat: int) -> dict:
    """The COG writer's own choices, at the default level, one thread: GDAL's block cache of
    cloudfree's writer; the predictor of the reference's COG copy."""
    runs: dict[str, list] = {}
    loads = [load()]
    for r in range(repeat):
        for cache in (64, 256):
            dest = root / f"alt{cache}_{r}" / "2021-05-01.tif"
            runs.setdefault(f"cloudfree_cog_cache_{cache}_mb_wall_cpu_s", []).append(
                run_cloudfree(paths, dest, None, "1", cache_mb=cache)[:2]
            )
        for pred in ("YES", "NO"):
            dest = root / f"altpred{pred}_{r}" / "2021-05-01.tif"
            dest.parent.mkdir()
            runs.setdefault(f"rasterio_cog_predictor_{pred.lower()}_wall_cpu_s", []).append(
                run_rasterio_cog(paths, dest, None, "1", predictor=pred)[:2]
            )
            runs.setdefault(f"rasterio_cog_predictor_{pred.lower()}_mb", []).append(
                dest.stat().st_size / 2**20
            )
        loads.append(load())
        for f in root.glob(f"alt*_{r}"):
            shutil.rmtree(f)
    # (wall, CPU) seconds, best of each by wall time; sizes in MB
    return {k: min(v) for k, v in runs.items()} | {"loadavg_1min": loads}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--grid", type=int, default=3, help="tiles per side of the base mosaic")
    ap.add_argument("--overlap", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak memory runs")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "mosaic.json"))
    args = ap.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = make_tiles(root / "tiles", args.grid, args.grid, args.tile, args.overlap)
        speed = []
        for level, threads in SETTINGS:
            speed.append(compare(paths, root, level, threads, args.repeat))
            print(json.dumps(speed[-1]), flush=True)
        alt = alternatives(paths, root, args.repeat)
        print(json.dumps(alt), flush=True)
        memory = {} if args.no_memory else measure_memory(root, paths, args)
    result = {
        "command": " ".join(["python", *sys.argv]),
        "tiles": len(paths), "tile_px": args.tile, "bands": BANDS, "overlap_px": args.overlap,
        "repeat": args.repeat, "output_mpx": speed[0]["output_mpx"],
        "speed": speed,
        "alternatives": alt,
        **memory,
        "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg()),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "gdal": rasterio.__gdal_version__, "rasterio": rasterio.__version__,
        "self_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }  # fmt: skip
    print(json.dumps(result, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


def measure_memory(root: Path, paths: list[Path], args: argparse.Namespace) -> dict:
    """Peak RSS of cloudfree's mosaic (both formats): the base one, one of 10x the tiles."""
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
    return {
        "x10_output_mpx": px_big / 1e6,
        **{
            f"peak_rss_mb_{fmt}_{name}": rss[(name, fmt)]
            for fmt in ("cog", "gtiff") for name in ("base", "x10")
        },
        **{
            f"peak_rss_ratio_x10_{fmt}": rss[("x10", fmt)] / rss[("base", fmt)]
            for fmt in ("cog", "gtiff")
        },
    }  # fmt: skip


if __name__ == "__main__":
    main()
