"""``cloudfree pack``: pack a SEN12MS-CR-TS region/split, or any tile manifest, into HDF5.

cloudfree pack sen12mscrts <root> <split> <region> <dest.h5>   (the dataset converter's
                                                                 arguments)
cloudfree pack manifest <manifest.csv> <dest.h5>

``cloudfree-pack`` is the same command under its former name.

Reads the dataset folder or a manifest; writes the packed file (and, for SEN12MS-CR-TS, the
detected cloud masks in a temporary folder).  Settings the command line does not give come
from the config schema's defaults (``pack``, ``evaluation``, ``clouds``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cloudfree.config import schema, section, source_settings
from cloudfree.errors import CloudfreeError
from cloudfree.manifest import read_manifest
from cloudfree.pack.writer import pack_region
from cloudfree.tiles.region import download_tiles

log = logging.getLogger("cloudfree.cli")


def _parser(prog: str) -> argparse.ArgumentParser:
    keys = schema()["properties"]["pack"]["properties"]
    dataset = schema()["$defs"]["sen12mscrts"]["properties"]
    splits = dataset["splits"]["items"]["enum"]
    regions = [r for r in dataset["region"]["enum"] if r is not None]
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    p.add_argument(
        "--compression",
        default=keys["compression"]["default"],
        choices=keys["compression"]["enum"],
        help="HDF5 filter of the pixel datasets (pack.compression; default %(default)s)",
    )
    p.add_argument(
        "--compression-level",
        type=int,
        default=keys["compression_level"]["default"],
        help="Blosc or gzip level (pack.compression_level; default %(default)s)",
    )
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sen12mscrts", help="one region and split of SEN12MS-CR-TS on disk")
    s.add_argument("root", type=Path, help="folder holding ROIs1158, ROIs1868, ROIs1970, ROIs2017")
    s.add_argument("split", choices=["all", *splits])
    s.add_argument("region", choices=regions, help="dataset region whose ROI lists are used")
    s.add_argument("dest", type=Path, help="HDF5 file to write")
    s.add_argument("--s1", action="store_true", help="list the S1 files in the manifest too")
    s.add_argument("--crop", type=int, default=None, help="cut patches into tiles of N px")
    s.add_argument("--max-patches", type=int, default=None, help="patches per ROI")
    m = sub.add_parser("manifest", help="a tile manifest CSV written by the workflow")
    m.add_argument("manifest", type=Path)
    m.add_argument("dest", type=Path)
    return p


def pack_sen12mscrts(
    root: Path,
    split: str,
    region: str,
    dest: Path,
    *,
    s1: bool,
    crop: int | None,
    max_patches: int | None,
    pack: Mapping[str, Any],
) -> Path:
    """Detect clouds on a SEN12MS-CR-TS region/split and pack it into ``dest`` (``pack``: the
    resolved ``pack`` section)."""
    spec: dict[str, Any] = {"root": str(root), "region": region, "s1": s1}
    spec.update({k: v for k, v in (("crop", crop), ("max_patches", max_patches)) if v is not None})
    if split != "all":  # all: the schema's default, every split
        spec["splits"] = [split]
    cfg = {"source": "sen12mscrts", "sen12mscrts": source_settings("sen12mscrts", spec)}
    with tempfile.TemporaryDirectory(prefix="cloudfree-pack-") as tmp:
        manifest = download_tiles(
            region, cfg, Path(tmp) / "tiles", Path(tmp) / "manifest.csv",
            clouds_cfg=section("clouds"),
        )  # fmt: skip
        return pack_region(manifest, dest, pack=pack, evaluation=section("evaluation"))


def main(argv: Sequence[str] | None = None, prog: str = "cloudfree-pack") -> int:
    args = _parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        # validated against the schema (the level's range) like the workflow's config
        pack = section(
            "pack",
            {"compression": args.compression, "compression_level": args.compression_level},
        )
        if args.command == "sen12mscrts":
            out = pack_sen12mscrts(
                args.root, args.split, args.region, args.dest, s1=args.s1, crop=args.crop,
                max_patches=args.max_patches, pack=pack,
            )  # fmt: skip
        else:
            out = pack_region(
                read_manifest(args.manifest), args.dest, pack=pack,
                evaluation=section("evaluation"),
            )  # fmt: skip
    except CloudfreeError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    log.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
