"""Measure HDF5 packing: speed, file size and random-access reads against the GeoTIFFs.

    python benchmarks/packing.py                  # 6 tiles x 30 dates x 13 bands x 256 px

One run on one synthetic region (written as per-date deflate GeoTIFFs, as the tile sources
write them: tiled, 256 px blocks, horizontal predictor) reports:

- packing speed of ``pack_region`` (MB/s of raw pixels, GeoTIFF decoding included) and the
  write speed of each HDF5 setting alone;
- file sizes: the GeoTIFFs (bands + masks) against each packed file;
- read time per sample of two access patterns: a tile's whole series (bands and cloud mask)
  and a training sample (what ``TrainDataset`` reads: a ``train.crop`` window of every date
  of a random tile, bands and mask, and the same window size of another tile's mask for the
  synthetic gaps).

Readers, timed side by side (each sample is read by every reader in turn, the order rotating,
so load changes hit all alike): each packed setting through ``PackedReader`` (the training
reader; no in-memory tile cache), the previous layout (one chunk per whole date), the
per-date GeoTIFFs opened for every read, the same GeoTIFFs through rasterio datasets kept
open, and the dataset converter's setting (gzip level 9, automatic chunks, bare h5py).
Outside the targets, three references bound what a reader could gain: the default setting
without its Fletcher-32 checksums (what checking costs), the decode floor (whole-date chunks,
no checksum, read into one reused array: Blosc's decoding and little else, the ceiling of
any reader of this codec, crops excepted) and the kept-handle GeoTIFFs read into a
preallocated array (``read(out=...)``, no ``np.stack`` copy: the leanest GeoTIFF reader).

Every read decodes its data: training reads a random crop of a random tile each sample from
regions larger than any cache, so the kept-handle GeoTIFFs run with ``GDAL_CACHEMAX`` of
16 MB (room for a few decoded blocks of all bands, not for a tile's series; with GDAL's
default cache, 5 % of RAM, this region's decoded blocks stay cached and repeated reads
cost a copy: that case is reported too, as ``geotiff_kept_cached``, outside the targets).
The page cache is warm for every reader (the files fit in memory): the times are decoding,
not disk.  The load average is recorded at the start and end of the reads.

Writes benchmarks/results/packing.json.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from cloudfree.pack import writer
from cloudfree.pack.load import load_series
from cloudfree.pack.writer import pack_region, write_packed
from cloudfree.packed import TileRef, iter_tiles, packed_bands, read_meta
from cloudfree.tiles.synthetic.region import generate_region
from cloudfree.tiles.synthetic.spec import SyntheticSpec
from cloudfree.train.reader import PackedReader

SETTINGS = {  # name -> pack section keys (the rest: the schema defaults)
    "blosc_lz4hc": {"compression": "blosc_lz4hc", "compression_level": 4},
    "blosc_lz4": {"compression": "blosc_lz4", "compression_level": 4},
    "gzip4": {"compression": "gzip", "compression_level": 4},
    "lzf": {"compression": "lzf", "compression_level": 0},
}
WHOLE_DATES = "blosc_lz4hc_whole_dates"  # the previous layout: one chunk per whole date
CONVERTER = "gzip9_auto_chunks"
BEST = "blosc_lz4hc"  # the schema's default pack.compression
KEPT, PER_READ, CACHED = "geotiff_kept_handles", "geotiff_open_per_read", "geotiff_kept_cached"
KEPT_OUT = "geotiff_kept_handles_out"  # kept handles, read into a preallocated array
NO_CHECKSUM = "blosc_lz4hc_no_checksum"  # the default setting without Fletcher-32
MASK_DONOR = "blosc_lz4hc_mask_donor"  # the donor's mask alone (PackedReader.read_mask)
FLOOR = "decode_floor"  # whole-date chunks, no checksum, one reused output array
GDAL_CACHE_MB = 16  # the kept-handle GeoTIFFs: a few decoded blocks, never a tile's series
TARGET = 5.0  # packed reads at least this many times faster than the kept-handle GeoTIFFs

Window2 = tuple[slice, slice] | None
Sample = tuple[str, Window2, str | None, Window2]  # tile, window, donor tile, donor window
Read = Callable[[str, Window2, str | None, Window2], tuple[np.ndarray, ...]]


@contextmanager
def whole_date_chunks() -> Iterator[None]:
    """Write with the previous layout: one chunk per date holding the whole tile."""
    chunks = writer._chunks
    writer._chunks = lambda shape: (1, *shape[1:])
    try:
        yield
    finally:
        writer._chunks = chunks


def write_converter(path: Path, series: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """The dataset converter's setting: gzip 9, h5py's automatic chunks, no shuffle."""
    with h5py.File(path, "w") as h5:
        for tile, (s2, mask) in series.items():
            g = h5.create_group(f"tiles/{tile}")
            g.create_dataset("s2", data=s2, chunks=True, compression="gzip", compression_opts=9)
            g.create_dataset("mask", data=mask, chunks=True, compression="gzip", compression_opts=9)


def packed_reader(path: Path, mask_donor: bool = False) -> Read:
    """Reads through the training reader (no in-memory tile cache: every read decodes); the
    donor's window by ``read`` (its bands decoded, then dropped) or, with ``mask_donor``, by
    ``read_mask`` (the mask alone)."""
    reader = PackedReader([path], cache_bytes=0)
    refs: dict[str, TileRef] = {t.tile: t for t in read_meta([path]).tiles}
    every = slice(None)

    def read(tile: str, win: Window2, donor: str | None, dwin: Window2) -> tuple[np.ndarray, ...]:
        rows, cols = win if win is not None else (every, every)
        out = reader.read(refs[tile], every, rows, cols)
        if donor is not None and dwin is not None and mask_donor:
            out = (*out, reader.read_mask(refs[donor], every, *dwin))
        elif donor is not None and dwin is not None:
            out = (*out, reader.read(refs[donor], every, *dwin)[1])
        return out

    return read


def write_bare(
    path: Path, series: dict[str, tuple[np.ndarray, np.ndarray]], pack: dict[str, Any],
    whole_dates: bool, checksum: bool,
) -> None:  # fmt: skip
    """The default setting's filter, bare h5py: 64 px or whole-date chunks, with or without
    Fletcher-32 checksums."""
    comp = writer.compression_filter(pack["compression"], pack["compression_level"])
    with h5py.File(path, "w") as h5:
        for tile, arrays in series.items():
            for name, data in zip(("s2", "mask"), arrays, strict=True):
                chunks = (1, *data.shape[1:]) if whole_dates else writer._chunks(data.shape)
                h5.create_dataset(
                    f"tiles/{tile}/{name}", data=data, chunks=chunks, fletcher32=checksum, **comp
                )


def bare_reader(path: Path, reuse: bool) -> Read:
    """Bare h5py: a whole series with one ``read_direct`` per dataset (into one array reused
    for every read when ``reuse``), a window by slicing."""
    h5 = h5py.File(path, "r")
    buffers: dict[tuple[tuple[int, ...], str], np.ndarray] = {}

    def one(tile: str, win: Window2) -> list[np.ndarray]:
        g, out = h5["tiles"][tile], []
        for name in ("s2", "mask"):
            d = g[name]
            if win is not None:
                out.append(d[(slice(None),) * (d.ndim - 2) + win])
                continue
            key = (d.shape, d.dtype.str)
            buf = buffers.setdefault(key, np.empty(d.shape, d.dtype)) if reuse else None
            buf = np.empty(d.shape, d.dtype) if buf is None else buf
            d.read_direct(buf)
            out.append(buf)
        return out

    def read(tile: str, win: Window2, donor: str | None, dwin: Window2) -> tuple[np.ndarray, ...]:
        out = one(tile, win)
        return (*out, one(donor, dwin)[1]) if donor is not None else tuple(out)

    return read


def converter_reader(path: Path) -> Read:
    h5 = h5py.File(path, "r")  # one handle, as a DataLoader worker keeps it

    def one(tile: str, win: Window2) -> tuple[np.ndarray, np.ndarray]:
        g = h5["tiles"][tile]
        if win is None:
            return g["s2"][()], g["mask"][()]
        return g["s2"][:, :, win[0], win[1]], g["mask"][:, win[0], win[1]]

    def read(tile: str, win: Window2, donor: str | None, dwin: Window2) -> tuple[np.ndarray, ...]:
        out = one(tile, win)
        return (*out, one(donor, dwin)[1]) if donor is not None else out

    return read


def window(win: Window2) -> Window | None:
    if win is None:
        return None
    return Window(win[1].start, win[0].start, win[1].stop - win[1].start,
                  win[0].stop - win[0].start)  # fmt: skip


def geotiff_reader(manifest: Any, keep_open: bool, into: bool = False) -> Read:
    """Per-date GeoTIFFs: opened for every read, or rasterio datasets kept open (``into``:
    each date read into its place of one preallocated series array, no stacking copy)."""
    files = {t: rows.sort_values("date") for t, rows in manifest.groupby("tile")}
    handles: dict[str, list[tuple[Any, Any]]] = {}
    if keep_open:
        handles = {
            t: [(rasterio.open(r.image), rasterio.open(r.mask)) for r in rows.itertuples()]
            for t, rows in files.items()
        }

    def series(tile: str, win: Window2) -> tuple[np.ndarray, np.ndarray]:
        w = window(win)
        s2, mask = [], []
        if keep_open and into:
            first, first_mask = handles[tile][0]
            hh, ww = (first.height, first.width) if w is None else (int(w.height), int(w.width))
            n = len(handles[tile])
            s2_out = np.empty((n, first.count, hh, ww), first.dtypes[0])
            mask_out = np.empty((n, hh, ww), first_mask.dtypes[0])
            for t, (img, msk) in enumerate(handles[tile]):
                img.read(window=w, out=s2_out[t])
                msk.read(1, window=w, out=mask_out[t])
            return s2_out, mask_out
        if keep_open:
            for img, msk in handles[tile]:
                s2.append(img.read(window=w))
                mask.append(msk.read(1, window=w))
            return np.stack(s2), np.stack(mask)
        for row in files[tile].itertuples():
            with rasterio.open(row.image) as src:
                s2.append(src.read(window=w))
            with rasterio.open(row.mask) as src:
                mask.append(src.read(1, window=w))
        return np.stack(s2), np.stack(mask)

    def read(tile: str, win: Window2, donor: str | None, dwin: Window2) -> tuple[np.ndarray, ...]:
        out = series(tile, win)
        return (*out, series(donor, dwin)[1]) if donor is not None else out

    return read


def time_side_by_side(
    readers: dict[str, Read], samples: list[Sample]
) -> tuple[dict[str, float], list[float]]:
    """Median milliseconds per sample of each reader, every sample read by all readers in
    turn (the order rotating by one each sample), after one untimed warm-up read each; and
    the 1-minute load average after each sample."""
    names = list(readers)
    for name in names:
        readers[name](*samples[0])
    times: dict[str, list[float]] = {n: [] for n in names}
    loads = []
    for i, sample in enumerate(samples):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start = time.perf_counter()
            readers[name](*sample)
            times[name].append(time.perf_counter() - start)
        loads.append(os.getloadavg()[0])
    return {n: 1000 * statistics.median(t) for n, t in times.items()}, loads


def du(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def draw_samples(
    tiles: list[str], size: int, crop: int, n: int
) -> tuple[list[Sample], list[Sample]]:
    """Whole series of random tiles, and training samples: a random crop of a random tile and
    a random crop of another tile's mask (the gap donor), every date."""
    rng = np.random.default_rng(0)

    def win() -> tuple[slice, slice]:
        y, x = (int(v) for v in rng.integers(0, size - crop + 1, 2))
        return slice(y, y + crop), slice(x, x + crop)

    whole: list[Sample] = [(tiles[int(rng.integers(len(tiles)))], None, None, None)
                           for _ in range(n)]  # fmt: skip
    crops: list[Sample] = []
    for _ in range(n):
        tile = int(rng.integers(len(tiles)))
        donor = (tile + 1 + int(rng.integers(len(tiles) - 1))) % len(tiles)
        crops.append((tiles[tile], win(), tiles[donor], win()))
    return whole, crops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles-x", type=int, default=3)
    parser.add_argument("--tiles-y", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--dates", type=int, default=30)
    parser.add_argument("--samples", type=int, default=20, help="timed reads per reader")
    parser.add_argument("--crop", type=int, default=section("train")["crop"])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/packing.json")
    args = parser.parse_args()
    load_start = os.getloadavg()

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
        with rasterio.open(manifest["image"].iloc[0]) as src:
            tiff = {"compress": src.compression.name if src.compression else None,
                    "predictor": src.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR"),
                    "block": list(src.block_shapes[0])}  # fmt: skip

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
        with whole_date_chunks():
            start = time.perf_counter()
            write_packed(
                work / f"{WHOLE_DATES}.h5", loaded, region="bench", source="synthetic",
                bands=bands, pack=packs[BEST],
            )  # fmt: skip
            results[WHOLE_DATES] = {"write_mb_s": raw / 1e6 / (time.perf_counter() - start)}
        start = time.perf_counter()
        write_converter(work / f"{CONVERTER}.h5", series)
        results[CONVERTER] = {"write_mb_s": raw / 1e6 / (time.perf_counter() - start)}
        packed_names = [*SETTINGS, WHOLE_DATES]
        write_bare(work / f"{NO_CHECKSUM}.h5", series, packs[BEST], False, False)
        write_bare(work / f"{FLOOR}.h5", series, packs[BEST], True, False)
        for name in (NO_CHECKSUM, FLOOR):
            results[name] = {}
        results[MASK_DONOR] = {"size_mb": (work / f"{BEST}.h5").stat().st_size / 1e6}
        for name in [*packed_names, CONVERTER, NO_CHECKSUM, FLOOR]:
            results[name]["size_mb"] = (work / f"{name}.h5").stat().st_size / 1e6
        for name in (KEPT, KEPT_OUT, PER_READ, CACHED):
            results[name] = {"size_mb": du(tiffs) / 1e6}

        c = min(args.crop, args.size)
        whole, crops = draw_samples(tiles, args.size, c, args.samples)
        load_reads = os.getloadavg()
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
            readers = {name: packed_reader(work / f"{name}.h5") for name in packed_names}
            readers[CONVERTER] = converter_reader(work / f"{CONVERTER}.h5")
            readers[MASK_DONOR] = packed_reader(work / f"{BEST}.h5", mask_donor=True)
            readers[NO_CHECKSUM] = bare_reader(work / f"{NO_CHECKSUM}.h5", reuse=False)
            readers[FLOOR] = bare_reader(work / f"{FLOOR}.h5", reuse=True)
            readers[KEPT] = geotiff_reader(manifest, keep_open=True)
            readers[KEPT_OUT] = geotiff_reader(manifest, keep_open=True, into=True)
            readers[PER_READ] = geotiff_reader(manifest, keep_open=False)
            loads: dict[str, list[float]] = {}
            for pattern, samples in (("series", whole), ("crop", crops)):
                ms, loads[pattern] = time_side_by_side(readers, samples)
                for name, value in ms.items():
                    results[name][f"read_ms_{pattern}"] = value
            # sanity: every reader returns the same pixels
            for sample in (whole[0], crops[0]):
                ref = readers[KEPT](*sample)
                for name, read in readers.items():
                    got = read(*sample)
                    assert all(np.array_equal(a, b) for a, b in zip(got, ref, strict=True)), name
            readers.clear()  # closes the kept GeoTIFF handles (and their cached blocks)
        # GDAL's default block cache: this region's decoded blocks stay cached (not a target)
        cached = {CACHED: geotiff_reader(manifest, keep_open=True)}
        for pattern, samples in (("series", whole), ("crop", crops)):
            ms, _ = time_side_by_side(cached, samples)
            results[CACHED][f"read_ms_{pattern}"] = ms[CACHED]
        load_end = os.getloadavg()

    best, kept = results[BEST], results[KEPT]
    series_mb = raw / len(tiles) / 1e6  # one tile's s2 and mask, decoded
    summary = {
        "series_speedup_vs_geotiff_kept": kept["read_ms_series"] / best["read_ms_series"],
        "crop_speedup_vs_geotiff_kept": kept["read_ms_crop"] / best["read_ms_crop"],
        "series_speedup_vs_geotiff_open_per_read": results[PER_READ]["read_ms_series"]
        / best["read_ms_series"],
        "crop_speedup_vs_geotiff_open_per_read": results[PER_READ]["read_ms_crop"]
        / best["read_ms_crop"],
        "crop_speedup_vs_whole_date_chunks": results[WHOLE_DATES]["read_ms_crop"]
        / best["read_ms_crop"],
        "series_speedup_vs_gzip9_auto": results[CONVERTER]["read_ms_series"]
        / best["read_ms_series"],
        "size_vs_geotiff": best["size_mb"] / kept["size_mb"],
        "crop_speedup_vs_geotiff_kept_mask_donor": kept["read_ms_crop"]
        / results[MASK_DONOR]["read_ms_crop"],
        # outside the targets: the leanest GeoTIFF reader, and what bounds a series read
        "series_speedup_vs_geotiff_kept_out": results[KEPT_OUT]["read_ms_series"]
        / best["read_ms_series"],
        "crop_speedup_vs_geotiff_kept_out": results[KEPT_OUT]["read_ms_crop"]
        / best["read_ms_crop"],
        "series_ceiling_vs_geotiff_kept": kept["read_ms_series"] / results[FLOOR]["read_ms_series"],
        "series_checksum_share": 1
        - results[NO_CHECKSUM]["read_ms_series"] / best["read_ms_series"],
        "series_mb_s": {
            name: series_mb / results[name]["read_ms_series"] * 1000
            for name in (BEST, NO_CHECKSUM, FLOOR, KEPT, KEPT_OUT)
        },
    }
    summary["targets_met"] = bool(
        summary["series_speedup_vs_geotiff_kept"] >= TARGET
        and summary["crop_speedup_vs_geotiff_kept"] >= TARGET
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
            "geotiff": tiff,
            "geotiff_decode_seconds": decode_s,
        },
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_start": list(load_start),
            "load_average_reads_start": list(load_reads),
            "load_average_end": list(load_end),
            "load_average_1min_during_reads": {
                k: {"min": min(v), "max": max(v)} for k, v in loads.items()
            },
        },
        "method": {
            "packed": "cloudfree.train.reader.PackedReader, cache_bytes 0; the crop's donor "
            "mask by read (bands decoded and dropped), in blosc_lz4hc_mask_donor by read_mask",
            KEPT: f"rasterio datasets kept open, GDAL_CACHEMAX {GDAL_CACHE_MB} MB (a tile's "
            f"series decodes to {series_mb:.0f} MB: read date by date, each read evicts the "
            "blocks a later read of the same tile needs, so no read is served from the cache)",
            KEPT_OUT: "as geotiff_kept_handles, each date read into a preallocated array",
            NO_CHECKSUM: "blosc_lz4hc, 64 px chunks, no Fletcher-32; bare h5py read_direct",
            FLOOR: "blosc_lz4hc, whole-date chunks, no Fletcher-32, bare h5py read_direct into "
            "one reused array (series floor; its crops decode whole dates)",
            CACHED: "rasterio datasets kept open, GDAL's default cache (not a target)",
            "series": "s2 and mask of a random tile, every date",
            "crop": f"s2 and mask of a {c} px window of a random tile and the mask of a {c} px "
            "window of another tile, every date (TrainDataset's reads)",
            "order": "each sample read by every reader in turn, order rotating; median",
        },
        "settings": results,
        "summary": summary,
    }
    print(f"{'setting':24s} {'size MB':>8s} {'series ms':>10s} {'crop ms':>8s} {'write MB/s':>10s}")
    for name, r in results.items():
        print(
            f"{name:24s} {r['size_mb']:8.1f} {r['read_ms_series']:10.1f} "
            f"{r['read_ms_crop']:8.1f} {r.get('write_mb_s', float('nan')):10.1f}"
        )
    print(f"pack_region ({BEST}, GeoTIFF decoding included): {best['pack_mb_s']:.1f} MB/s")
    print(f"load average: start {load_start}, reads {load_reads}, end {load_end}")
    print(json.dumps(summary, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if summary["targets_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
