"""``cloudfree score``: the masked/observed metrics of any reconstruction of one date.

cloudfree score PRED MASK TRUTH [--clouds CLOUDS] [--out FILE.csv|FILE.json]

``PRED`` is the reconstruction, ``MASK`` the pixels hidden from the method (1 hidden, 0 seen;
one band), ``TRUTH`` the true image, all three on one grid; ``--clouds`` the truth's cloud
classes (0 clear, 1 cloud, 2 thin cloud, 3 shadow, 255 nodata), when the truth is not clear
everywhere.  The numbers are those of the workflow's metrics tables, computed by the same
code (:func:`cloudfree.metrics.single.score_date`): ``masked`` pixels are hidden and have a
clear truth, ``observed`` ones have a clear truth and were seen, ``all`` both; masked and all
pixels score the product (the seen pixels pasted back from the truth), observed ones the
prediction as it is.

Reads the GeoTIFFs (checked by :mod:`cloudfree.metrics.rasters`); writes one row (CSV, or a
JSON object) to ``--out`` or to the standard output.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from cloudfree.bands import REFLECTANCE_SCALE
from cloudfree.errors import CloudfreeError, InputDataError
from cloudfree.io import atomic_path
from cloudfree.metrics.rasters import read_date
from cloudfree.metrics.single import score_columns, score_date

log = logging.getLogger("cloudfree.cli")

FORMATS = ("csv", "json")
FILE_COLUMNS = ("prediction", "mask", "truth", "clouds")


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=(__doc__ or "").split("\n")[0],
        epilog=(
            "Reflectance = value * scale + offset: by default each file's own band scales "
            f"and offsets, else {1 / REFLECTANCE_SCALE:g} for integers (DN x "
            f"{REFLECTANCE_SCALE:g}) and 1 for floats. A pixel "
            "where every band holds the file's nodata value (or NaN) has no data."
        ),
    )
    p.add_argument("prediction", type=Path, help="reconstructed image (GeoTIFF, C bands)")
    p.add_argument("mask", type=Path, help="pixels hidden from the method: 1 hidden, 0 seen")
    p.add_argument("truth", type=Path, help="true image on the same grid (C bands)")
    p.add_argument(
        "--clouds", type=Path, default=None,
        help="cloud classes of the truth (0 clear, 1 cloud, 2 thin, 3 shadow, 255 nodata); "
        "only its clear pixels are scored (default: every pixel where the truth has data)",
    )  # fmt: skip
    p.add_argument(
        "--bands", default=None,
        help="comma-separated band names for the mae_masked_<band> columns (default: the "
        "files' band descriptions, else the 13 L1C bands for 13 bands, else band1..bandN)",
    )  # fmt: skip
    for role in ("prediction", "truth"):
        p.add_argument(f"--{role}-scale", type=_scale, default=None, help=f"scale of the {role}")
        p.add_argument(f"--{role}-offset", type=_finite, default=None, help=f"offset of the {role}")
    p.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    p.add_argument(
        "--format", choices=FORMATS, default=None,
        help="csv or json (default: by the suffix of --out, csv on stdout)",
    )  # fmt: skip
    return p


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _scale(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not above 0")
    return value


def output_format(out: Path | None, given: str | None) -> str:
    """``given``, else by the suffix of ``out`` (csv on the standard output)."""
    if given is not None:
        return given
    if out is None:
        return "csv"
    suffix = out.suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise InputDataError(
            f"{out}: cannot tell the format from the suffix {out.suffix!r}; name it .csv or "
            ".json, or give --format"
        )
    return suffix


def score_files(
    prediction: Path,
    mask: Path,
    truth: Path,
    *,
    clouds: Path | None = None,
    bands: tuple[str, ...] | None = None,
    scaling: dict[str, tuple[float | None, float | None]] | None = None,
) -> dict[str, object]:
    """The row of one date: the files, then :func:`~cloudfree.metrics.single.score_date`'s
    columns (``score_columns(bands)`` and ``cloud_fraction``)."""
    inputs = read_date(prediction, mask, truth, clouds=clouds, bands=bands, scaling=scaling)
    scores = score_date(inputs.raw, inputs.truth, inputs.gap, inputs.clear, inputs.valid,
                        inputs.bands)  # fmt: skip
    files = (prediction, mask, truth, clouds)
    return {c: "" if f is None else str(f) for c, f in zip(FILE_COLUMNS, files, strict=True)} | {
        c: scores[c] for c in (*score_columns(inputs.bands), "cloud_fraction")
    }


def _json_value(value: object) -> object:
    """JSON has no NaN nor infinity: NaN (an empty set) is null, an infinite PSNR ``"inf"``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    return value


def render(row: Mapping[str, object], fmt: str) -> str:
    """One row as CSV (header and row; NaN empty, infinity ``inf``, as the metrics tables)
    or as a JSON object."""
    if fmt == "json":
        return json.dumps({k: _json_value(v) for k, v in row.items()}, indent=1) + "\n"
    return pd.DataFrame([dict(row)], columns=list(row)).to_csv(index=False)


def main(argv: Sequence[str] | None = None, prog: str = "cloudfree score") -> int:
    args = _parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    scaling = {
        "prediction": (args.prediction_scale, args.prediction_offset),
        "truth": (args.truth_scale, args.truth_offset),
    }
    bands = None if args.bands is None else tuple(b.strip() for b in args.bands.split(","))
    try:
        fmt = output_format(args.out, args.format)
        row = score_files(
            args.prediction, args.mask, args.truth, clouds=args.clouds, bands=bands,
            scaling=scaling,
        )  # fmt: skip
        text = render(row, fmt)
        if args.out is None:
            sys.stdout.write(text)
        else:
            with atomic_path(args.out) as tmp:
                tmp.write_text(text)
            log.info("wrote %s", args.out)
    except CloudfreeError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
