"""``cloudfree predict``: reconstruct a GeoTIFF series with a trained model or its export.

cloudfree predict MODEL IMAGES... --masks MASKS... --out DIR [--dates D...]
cloudfree predict MODEL --manifest tiles.csv --out DIR [--tile T...]

MODEL is a model file of the train rule (``model.pt``), an ONNX export (``.onnx``, run by
onnxruntime) or a TorchScript one (``.ts``) of ``cloudfree export``.  IMAGES are one GeoTIFF
a date of one scene on one grid, MASKS their cloud masks in the same order
(:mod:`cloudfree.infer.series`); a tile manifest (``results/tiles/<region>.csv``) gives both
for each of its tiles.  Writes ``DIR/<date>.tif`` (reconstructed bands, uint16 DN, observed
clear pixels kept) and ``DIR/<date>_quality.tif`` of every date, as the infer rule writes a
tile (``DIR/<tile>/...`` from a manifest), each file under a temporary name first.  Window,
overlap, batch size, device, mixed precision and compression default to the config schema's
``infer`` section.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cloudfree.config import schema, section
from cloudfree.errors import CloudfreeError, InputDataError
from cloudfree.infer.exported import load_predictor
from cloudfree.infer.predictor import Predictor
from cloudfree.infer.series import read_series, reconstruct_series
from cloudfree.manifest import read_manifest
from cloudfree.names import check_name

log = logging.getLogger("cloudfree.cli")
SETTINGS = ("window", "overlap", "batch_size", "device", "compress")


def _parser(prog: str) -> argparse.ArgumentParser:
    keys = schema()["properties"]["infer"]["properties"]
    regex = schema()["$defs"]["folder"]["properties"]["date_regex"]["default"]
    p = argparse.ArgumentParser(prog=prog, description=(__doc__ or "").split("\n")[0])
    p.add_argument("model", type=Path, help="model.pt, or an .onnx / .ts export of it")
    p.add_argument("images", type=Path, nargs="*", help="one GeoTIFF a date, one grid")
    p.add_argument("--masks", type=Path, nargs="+", help="cloud mask of each image, same order")
    p.add_argument("--dates", nargs="+", help="YYYY-MM-DD of each image (default: DATE tag, "
                   "else the file name)")  # fmt: skip
    p.add_argument("--date-regex", default=regex, help="date in a file name (default %(default)s)")
    p.add_argument("--manifest", type=Path, help="a tile manifest CSV instead of IMAGES")
    p.add_argument(
        "--tile", nargs="+",
        help="with IMAGES: the scene's name (TILE tag; default: the images' folder); with "
        "--manifest: the tiles to run (default all)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="folder of the outputs")
    for key in SETTINGS:
        spec = keys[key]
        kind = int if spec["type"] == "integer" else str
        p.add_argument(
            f"--{key.replace('_', '-')}", type=kind, default=None, choices=spec.get("enum"),
            help=f"infer.{key} (default {spec['default']})",
        )  # fmt: skip
    p.add_argument("--no-amp", action="store_true", help="no mixed precision on a GPU")
    return p


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """The ``infer`` section with the flags given, checked by the schema."""
    given = {k: getattr(args, k) for k in SETTINGS if getattr(args, k) is not None}
    if args.no_amp:
        given["amp"] = False
    return section("infer", given)


def scene_name(images: Sequence[Path], tile: Sequence[str] | None) -> str:
    """``--tile``, else the images' folder when it is a safe name (as the tiles stage lays
    them out, ``<tile>/<date>_S2.tif``), else ``scene``."""
    if tile:
        if len(tile) != 1:
            raise InputDataError(f"--tile: one name for a series of images, got {list(tile)}")
        return check_name(tile[0], "tile", "--tile")
    name = images[0].resolve().parent.name
    try:
        return check_name(name, "tile", "folder")
    except InputDataError:
        return "scene"


def run_series(
    predictor: Predictor, args: argparse.Namespace, cfg: dict[str, Any], tags: dict[str, str]
) -> list[Path]:
    if args.manifest is not None:
        if args.images or args.masks or args.dates:
            raise InputDataError("--manifest replaces IMAGES, --masks and --dates; give either")
        manifest = read_manifest(args.manifest)
        wanted = list(args.tile or sorted(manifest["tile"].unique()))
        unknown = sorted(set(wanted) - set(manifest["tile"]))
        if unknown:
            raise InputDataError(f"{args.manifest}: no tile {', '.join(unknown)}")
        jobs = []
        for name in wanted:
            rows = manifest[manifest["tile"] == name].sort_values("date")
            jobs.append((name, list(rows["image"]), list(rows["mask"]), list(rows["date"])))
    else:
        if not args.images:
            raise InputDataError("give IMAGES (one GeoTIFF a date) or --manifest")
        if not args.masks:
            raise InputDataError(
                "--masks: one cloud mask a date is needed (classes 0 clear, 1 cloud, 2 thin "
                "cloud, 3 shadow; 0/1 masks work), in the order of the images"
            )
        jobs = [(scene_name(args.images, args.tile), args.images, args.masks, args.dates)]
    written = []
    for name, images, masks, dates in jobs:
        tile = read_series(
            images, masks, bands=predictor.bands, date_regex=args.date_regex, dates=dates,
            tile=name,
        )  # fmt: skip
        out = args.out / name if args.manifest is not None else args.out
        reconstruct_series(predictor, tile, out, compress=cfg["compress"], tags=tags)
        log.info("%s: %d dates reconstructed into %s", name, len(tile.dates), out)
        written.append(out)
    return written


def main(argv: Sequence[str] | None = None, prog: str = "cloudfree predict") -> int:
    args = _parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("cloudfree").setLevel(logging.INFO)
    try:
        cfg = settings(args)
        predictor = load_predictor(
            args.model, cfg["device"], window=cfg["window"], overlap=cfg["overlap"],
            batch_size=cfg["batch_size"], amp=cfg["amp"],
        )  # fmt: skip
        run_series(predictor, args, cfg, {"MODEL": args.model.name})
    except CloudfreeError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
