"""Region mosaics: every product, date and date pair of a region's inference tree.

Reads ``<tiles_dir>/<tile>/`` (the products of :data:`PRODUCTS` and their
``<date>_quality.tif``); writes into ``<dest_dir>/`` one mosaic per product and key
(``<date>.tif``, ``<date>_embedding.tif``, ``<date1>_<date2>_change.tif``) with its side
layers (:mod:`cloudfree.mosaic.write`), all on one grid, and the temporal composite
``composite.tif`` (:mod:`cloudfree.mosaic.composite`).  Entry point of rule mosaic:
:func:`mosaic_region`.  Hidden entries of the tree (``.*``, such as the marker
``.cloudfree-output`` of :func:`cloudfree.io.atomic_path`) are not tiles or products.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from cloudfree.errors import InputDataError
from cloudfree.io import atomic_path
from cloudfree.mosaic.composite import composite_region
from cloudfree.mosaic.read import (
    contributions_of,
    empty_grid,
    open_input,
    resampling_method,
    target_grid,
)
from cloudfree.mosaic.rules import rule_of
from cloudfree.mosaic.settings import check_setting
from cloudfree.mosaic.write import (
    Template,
    compression_options,
    template_of,
    window_count,
    write_mosaic,
)
from cloudfree.names import check_date, check_name
from cloudfree.progress import EVERY_SECONDS, Progress
from cloudfree.tiles.grid import Grid

log = logging.getLogger(__name__)

# Products of the inference stage: file name pattern (group "key") and mosaic file suffix.
PRODUCTS: dict[str, re.Pattern[str]] = {
    "reflectance": re.compile(r"^(?P<key>\d{4}-\d{2}-\d{2})\.tif$"),
    "embedding": re.compile(r"^(?P<key>\d{4}-\d{2}-\d{2})_embedding\.tif$"),
    "change": re.compile(r"^(?P<key>\d{4}-\d{2}-\d{2}_\d{4}-\d{2}-\d{2})_change\.tif$"),
}
SUFFIX = {"reflectance": "", "embedding": "_embedding", "change": "_change"}


def _product_key(file: Path) -> tuple[str, str] | None:
    """(product, key) of a product file's name, its dates checked; None for other files."""
    for product, pattern in PRODUCTS.items():
        if m := pattern.match(file.name):
            for date in m["key"].split("_"):
                check_date(date, str(file))
            return product, m["key"]
    return None


def product_files(tiles_dir: Path) -> dict[str, dict[str, list[Path]]]:
    """``{product: {key: [<tile>/<file> in tile-name order]}}`` of an inference tree.

    Hidden entries (``.*``: temporaries, :data:`cloudfree.io.OUTPUT_MARKER`) and files of no
    product are left out; a tile folder whose name is not a safe name, or a product file
    whose date does not exist, raises InputDataError naming it (its name would become a
    mosaic's file name or source).
    """
    found: dict[str, dict[str, list[Path]]] = {p: {} for p in PRODUCTS}
    folders = sorted(
        p for p in Path(tiles_dir).iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    for tile_dir in folders:
        check_name(tile_dir.name, "tile", str(tiles_dir))
        for file in sorted(tile_dir.iterdir()):
            if file.name.startswith(".") or not file.is_file():
                continue
            if (found_key := _product_key(file)) is not None:
                product, key = found_key
                found[product].setdefault(key, []).append(file)
    return {p: dict(sorted(v.items())) for p, v in found.items()}


def _key_of(path: Path) -> str:
    """The date (or date pair) of a product file, from its name or else its DATE tag
    (empty when it has none)."""
    if (found := _product_key(path)) is not None:
        return found[1]
    with open_input(path) as src:
        date = str(src.tags().get("DATE", ""))
    return check_date(date, f"{path}: DATE tag") if date else ""


def mosaic_date(
    paths: Sequence[Path],
    dest: Path,
    *,
    rule: str,
    crs: str | None,
    resolution: float | None,
    resampling: str,
    compress: str,
    level: int | None,
    fmt: str,
    block: int,
    grid: Grid | None = None,
    num_threads: int | str = 1,
) -> Path:
    """Mosaic one date's per-tile files (``<tile>/<key>...tif``, in order) into ``dest``.

    The tiles' folder names are the sources; each file's ``<date>_quality.tif`` beside it
    (when present) gives its quality.  The grid is ``grid`` or the union of the files in
    ``crs`` at ``resolution``.  The other settings are those of ``mosaic`` in the config
    (``level``: ``compress_level``, ``fmt``: ``format``).
    """
    rule_of(rule)
    resampling_method(resampling)
    paths = [Path(p) for p in paths]
    if grid is None:
        grid = target_grid(paths, crs, resolution)
    sources = sorted({p.parent.name for p in paths})
    contribs = [c for p in paths for c in contributions_of([p], _key_of(p), sources, rule=rule)]
    return write_mosaic(
        contribs, Path(dest), rule=rule, grid=grid, sources=sources, resampling=resampling,
        compress=compress, block=block, level=level, num_threads=num_threads, fmt=fmt,
    )  # fmt: skip


def mosaic_region(
    tiles_dir: Path,
    dest_dir: Path,
    *,
    rule: str,
    embedding_rule: str,
    change_rule: str,
    crs: str | None,
    resolution: float | None,
    resampling: str,
    compress: str,
    level: int | None,
    fmt: str,
    block: int,
    composite: Mapping[str, Any],
    dates: Sequence[str] | None = None,
    num_threads: int | str = 1,
    bands: Sequence[str] | None = None,
    every: float = EVERY_SECONDS,
    clock: Callable[[], float] = time.monotonic,
) -> list[Path]:
    """Mosaic every product, date and pair of ``tiles_dir/<tile>/`` into ``dest_dir``.

    The settings are those of ``mosaic`` in the config (``level``: ``compress_level``,
    ``fmt``: ``format``: ``cog`` with overviews or ``gtiff``, tiled and compressed without
    overviews).  All mosaics of a region share one grid (the union of all its files).
    ``rule`` is for reflectances, ``embedding_rule`` and ``change_rule`` for the other
    products.  ``dates`` (e.g. from the manifest) adds an empty mosaic (count 0) for a date
    no tile has.  ``composite`` (``{"enabled", "start", "end", "target", "rule"}``, see
    :func:`cloudfree.mosaic.composite.composite_region`) adds ``composite.tif`` when enabled.
    ``dest_dir`` is built in a temporary sibling and moved into place.  ``bands`` names the
    bands of an empty mosaic when no tile has a reflectance file (default
    :data:`S2_L1C_BANDS`; otherwise the tiles' own band count and descriptions are kept).
    A progress line (:class:`cloudfree.progress.Progress`, ``every`` seconds on ``clock``)
    counts the windows of all the region's mosaics.  Returns the reflectance mosaics.
    """
    rules = {"reflectance": rule, "embedding": embedding_rule, "change": change_rule}
    for product, r in rules.items():
        rule_of(r, f"mosaic.{product}_rule" if product != "reflectance" else "mosaic.rule")
    check_setting("format", fmt)
    compression_options(compress, level)
    resampling_method(resampling)
    if composite["enabled"]:
        rule_of(composite["rule"], "mosaic.composite.rule")
    tiles_dir = Path(tiles_dir)
    if not tiles_dir.is_dir():
        raise InputDataError(f"tiles directory {tiles_dir} does not exist")
    extra = [check_date(str(d), f"dates to mosaic of {tiles_dir}") for d in dates or ()]
    found = product_files(tiles_dir)
    for date in extra:
        found["reflectance"].setdefault(date, [])
    found["reflectance"] = dict(sorted(found["reflectance"].items()))
    inputs = [p for by_key in found.values() for paths in by_key.values() for p in paths]
    grid = target_grid(inputs, crs, resolution) if inputs else empty_grid(crs, resolution)
    refl_template = next(
        (template_of(ps[0]) for ps in found["reflectance"].values() if ps),
        Template.of_bands(bands),
    )
    sources = sorted({p.parent.name for p in inputs})
    dest_dir = Path(dest_dir)
    written = []
    mosaics = sum(map(len, found.values())) + bool(composite["enabled"])
    per = window_count(grid, block)
    progress = Progress(
        log, f"mosaics of {dest_dir} ({mosaics} x {per} windows)", mosaics * per,
        every=every, clock=clock,
    )  # fmt: skip
    with atomic_path(dest_dir) as tmp:
        tmp.mkdir()
        for product, by_key in found.items():
            for key, paths in by_key.items():
                r = rules[product]
                dest = tmp / f"{key}{SUFFIX[product]}.tif"
                tpl = refl_template if not paths else template_of(paths[0])
                tpl = replace(tpl, tags={**tpl.tags, "DATE": key.split("_")[-1]})
                write_mosaic(
                    contributions_of(paths, key, sources, rule=r), dest, rule=r, grid=grid,
                    sources=sources, resampling="nearest" if product == "change" else resampling,
                    template=tpl, compress=compress, block=block, level=level,
                    num_threads=num_threads, fmt=fmt, progress=progress,
                )  # fmt: skip
                if product == "reflectance":
                    written.append(dest_dir / dest.name)
        if composite["enabled"]:
            composite_region(
                found["reflectance"], tmp / "composite.tif", grid=grid, sources=sources,
                template=refl_template, start=composite["start"], end=composite["end"],
                target=composite["target"], rule=composite["rule"], resampling=resampling,
                compress=compress, block=block, level=level, num_threads=num_threads, fmt=fmt,
                progress=progress,
            )  # fmt: skip
    return written
