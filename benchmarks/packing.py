"""Measure HDF5 packing: speed, file size and random-access reads against the GeoTIFFs.

    python benchmarks/packing.py                  # 6 tiles x 30 dates x 13 bands x 256 px

One run on one synthetic region (written as per-date deflate GeoTIFFs, as the tile sources
write them) reports:

- packing speed of ``pack_region`` (MB/s of raw pixels, GeoTIFF decoding included) and the
  write speed of each HDF5 setting alone;
- file sizes: the GeoTIFFs (bands + masks) against each packed file;
- random-access read time per sample (one tile's whole series: bands and cloud mask; and a
  training crop: every date, 128 x 128 px) from the packed file, from the per-date GeoTIFFs,
  and from the dataset converter's setting (gzip level 9, automatic chunks, no shuffle).

Writes benchmarks/results/packing.json.  The page cache is warm for every reader (the files
fit in memory): the times are decoding, not disk.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import rasterio
from rasterio.windows import Window

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.config import section, source_settings
from cloudfree.pack.load import load_series
from cloudfree.pack.writer import pack_region, write_packed
from cloudfree.packed import iter_tiles, packed_bands
from cloudfree.tiles.synthetic.region import generate_region
from cloudfree.tiles.synthetic.spec import SyntheticSpec

SETTINGS = {  # name -> pack section keys (the rest: the schema defaults)
    "blosc_lz4hc": {"compression": "blosc_lz4hc", "compression_level": 4},
    "blosc_lz4": {"compression": "blosc_lz4", "compression_level": 4},
    "gzip4_datewise": {"compression": "gzip", "compression_level": 4},
    "lzf_datewise": {"compression": "lzf", "compression_level": 0},
}
CONVERTER = "gzip9_auto_chunks"
BEST = "blosc_lz4hc"  # the schema's default pack.compression


def write_converter(path: Path, series: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """The dataset converter's setting: gzip 9, h5py's automatic chunks, no shuffle."""
    with h5py.File(path, "w") as h5:
        for tile, (s2, mask) in series.items():
            g = h5.create_group(f"tiles/{tile}")
            g.create_dataset("s2", data=s2, chunks=True, compression="gzip", compression_opts=9)
            g.create_dataset("mask", data=mask, chunks=True, compression="gzip", compression_opts=9)


def h5_reader(path: Path) -> Callable[[str, Any], tuple[np.ndarray, np.ndarray]]:
    h5 = h5py.File(path, "r")  # one handle, as a DataLoader worker keeps it

    def read(tile: str, win: tuple[slice, slice] | None) -> tuple[np.ndarray, np.ndarray]:
        g = h5["tiles"][tile]
        if win is None:
            return g["s2"][()], g["mask"][()]
        return g["s2"][:, :, win[0], win[1]], g["mask"][:, win[0], win[1]]

    return read


def geotiff_reader(manifest: Any) -> Callable[[str, Any], tuple[np.ndarray, np.ndarray]]:
    files = {t: rows.sort_values("date") for t, rows in manifest.groupby("tile")}

    def read(tile: str, win: tuple[slice, slice] | None) -> tuple[np.ndarray, np.ndarray]:
        window = None
        if win is not None:
            window = Window(win[1].start, win[0].start, win[1].stop - win[1].start,
                            win[0].stop - win[0].start)  # fmt: skip
        s2, mask = [], []
        for row in files[tile].itertuples():
            with rasterio.open(row.image) as src:
                s2.append(src.read(window=window))
            with rasterio.open(row.mask) as src:
                mask.append(src.read(1, window=window))
        return np.stack(s2), np.stack(mask)

    return read


def time_reads(
    read: Callable[[str, Any], tuple[np.ndarray, np.ndarray]],
    samples: list[tuple[str, tuple[slice, slice] | None]],
) -> float:
    """Median milliseconds per sample (after one untimed warm-up read)."""
    read(*samples[0])
    times = []
    for tile, win in samples:
        start = time.perf_counter()
        read(tile, win)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def du(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles-x", type=int, default=3)
    parser.add_argument("--tiles-y", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--dates", type=int, default=30)
    parser.add_argument("--samples", type=int, default=20, help="timed reads per reader")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/packing.json")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cloudfree-bench-") as tmp:
        work = Path(tmp)
        synthetic = {
            "seed": 5, "tiles_x": args.tiles_x, "tiles_y": args.tiles_y, "tile_size": args.size,
            "overlap": 0, "n_dates": args.dates, "cloudiness": 0.4,
        }  # fmt: skip
        spec = SyntheticSpec.from_dict(source_settings("synthetic", synthetic))
        manifest = generate_region("bench", spec, work / "tiles")
        tiffs = [Path(p) for p in manifest["image"]] + [Path(p) for p in manifest["mask"]]
        tiles = sorted(manifest["tile"].unique())

        start = time.perf_counter()
        series = {
            t: load_series(rows.sort_values("date"), S2_L1C_BANDS)
            for t, rows in manifest.groupby("tile")
        }
        decode_s = time.perf_counter() - start
        raw = sum(s2.nbytes + mask.nbytes for s2, mask in series.values())

        results: dict[str, dict[str, Any]] = {}
        evaluation = section("evaluation")
        packs = {name: section("pack", kw) for name, kw in SETTINGS.items()}
        for name, pack in packs.items():
            dest = work / f"{name}.h5"
            start = time.perf_counter()
            pack_region(manifest, dest, pack=pack, evaluation=evaluation)
            pack_s = time.perf_counter() - start
            results[name] = {"pack_seconds": pack_s, "pack_mb_s": raw / 1e6 / pack_s}
        # Write speed alone: the already decoded arrays into the layout, per setting.
        for name, pack in packs.items():
            loaded = list(iter_tiles(work / f"{name}.h5"))
            bands = packed_bands(work / f"{name}.h5")
            start = time.perf_counter()
            write_packed(
                work / f"w_{name}.h5", loaded, region="bench", source="synthetic", bands=bands,
                pack=pack,
            )  # fmt: skip
            results[name]["write_mb_s"] = raw / 1e6 / (time.perf_counter() - start)
        start = time.perf_counter()
        write_converter(work / f"{CONVERTER}.h5", series)
        results[CONVERTER] = {"write_mb_s": raw / 1e6 / (time.perf_counter() - start)}

        rng = np.random.default_rng(0)
        c = min(args.crop, args.size)
        whole = [(tiles[int(rng.integers(len(tiles)))], None) for _ in range(args.samples)]
        crops = []
        for _ in range(args.samples):
            y, x = (int(v) for v in rng.integers(0, args.size - c + 1, 2))
            crops.append((tiles[int(rng.integers(len(tiles)))], (slice(y, y + c), slice(x, x + c))))
        readers = {name: h5_reader(work / f"{name}.h5") for name in [*SETTINGS, CONVERTER]}
        readers["geotiff_deflate"] = geotiff_reader(manifest)
        for name, read in readers.items():
            entry = results.setdefault(name, {})
            entry["read_ms_series"] = time_reads(read, whole)
            entry["read_ms_crop"] = time_reads(read, crops)
            if name != "geotiff_deflate":
                entry["size_mb"] = (work / f"{name}.h5").stat().st_size / 1e6
        results["geotiff_deflate"]["size_mb"] = du(tiffs) / 1e6
        # sanity: every reader returns the same pixels
        ref = readers["geotiff_deflate"](*whole[0])
        for name, read in readers.items():
            got = read(*whole[0])
            assert all(np.array_equal(a, b) for a, b in zip(got, ref, strict=True)), name

    best = results[BEST]
    summary = {
        "speedup_vs_geotiff": results["geotiff_deflate"]["read_ms_series"] / best["read_ms_series"],
        "speedup_vs_gzip9_auto": results[CONVERTER]["read_ms_series"] / best["read_ms_series"],
        "size_vs_geotiff": best["size_mb"] / results["geotiff_deflate"]["size_mb"],
        "crop_speedup_vs_geotiff": results["geotiff_deflate"]["read_ms_crop"]
        / best["read_ms_crop"],
        "crop_speedup_vs_gzip9_auto": results[CONVERTER]["read_ms_crop"] / best["read_ms_crop"],
    }
    summary["targets_met"] = bool(
        summary["speedup_vs_geotiff"] >= 10
        and summary["speedup_vs_gzip9_auto"] >= 10
        and summary["size_vs_geotiff"] <= 1.0
    )
    report = {
        "command": "python benchmarks/packing.py " + " ".join(sys.argv[1:]),
        "data": {
            "tiles": len(tiles),
            "dates": args.dates,
            "bands": 13,
            "size": args.size,
            "crop": c,
            "raw_mb": raw / 1e6,
            "geotiff_decode_seconds": decode_s,
        },
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],
        },
        "settings": results,
        "summary": summary,
    }
    print(f"{'setting':20s} {'size MB':>8s} {'series ms':>10s} {'crop ms':>8s} {'write MB/s':>10s}")
    for name, r in results.items():
        print(
            f"{name:20s} {r['size_mb']:8.1f} {r['read_ms_series']:10.1f} "
            f"{r['read_ms_crop']:8.1f} {r.get('write_mb_s', float('nan')):10.1f}"
        )
    print(f"pack_region ({BEST}, GeoTIFF decoding included): {best['pack_mb_s']:.1f} MB/s")
    print(json.dumps(summary, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if summary["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
