"""``cloudfree-pack``: pack a SEN12MS-CR-TS region/split, or any tile manifest, into HDF5.

cloudfree-pack sen12mscrts <root> <split> <region> <dest.h5>   (the dataset converter's
                                                                 arguments)
cloudfree-pack manifest <manifest.csv> <dest.h5>
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cloudfree.errors import CloudfreeError
from cloudfree.manifest import read_manifest
from cloudfree.pack.writer import COMPRESSIONS

log = logging.getLogger("cloudfree.cli")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cloudfree-pack", description=__doc__.split("\n")[0])
    p.add_argument(
        "--compression", default=COMPRESSIONS[0], choices=COMPRESSIONS, help="HDF5 filter"
    )
    p.add_argument("--compression-level", type=int, default=4, help="gzip level (0-9)")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sen12mscrts", help="one region and split of SEN12MS-CR-TS on disk")
    s.add_argument("root", type=Path, help="folder holding ROIs1158, ROIs1868, ROIs1970, ROIs2017")
    s.add_argument("split", choices=["all", "train", "val", "test"])
    s.add_argument("region", help="africa, america, asiaEast, asiaWest, europa or all")
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
    s1: bool = False,
    crop: int | None = None,
    max_patches: int | None = None,
    compression: str = COMPRESSIONS[0],
    compression_level: int = 4,
) -> Path:
    """Detect clouds on a SEN12MS-CR-TS region/split and pack it into ``dest``."""
    from cloudfree.pack.writer import pack_region
    from cloudfree.tiles.region import download_tiles

    cfg = {
        "source": "sen12mscrts",
        "sen12mscrts": {
            "root": str(root), "region": region, "s1": s1, "crop": crop,
            "max_patches": max_patches,
            "splits": ["train", "val", "test"] if split == "all" else [split],
        },
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="cloudfree-pack-") as tmp:
        manifest = download_tiles(region, cfg, Path(tmp) / "tiles", Path(tmp) / "manifest.csv")
        return pack_region(
            manifest, dest, compression=compression, compression_level=compression_level
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "sen12mscrts":
            out = pack_sen12mscrts(
                args.root, args.split, args.region, args.dest, s1=args.s1, crop=args.crop,
                max_patches=args.max_patches, compression=args.compression,
                compression_level=args.compression_level,
            )  # fmt: skip
        else:
            from cloudfree.pack.writer import pack_region

            out = pack_region(
                read_manifest(args.manifest), args.dest, compression=args.compression,
                compression_level=args.compression_level,
            )  # fmt: skip
    except CloudfreeError as exc:
        print(f"cloudfree-pack: error: {exc}", file=sys.stderr)
        return 1
    log.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
