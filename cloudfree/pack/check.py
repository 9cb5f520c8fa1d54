"""Check a manifest's tiles before packing, and the packed file against the manifest after.

:func:`check_tiles_stamp` (rule pack_hdf5's first step) compares the download stamp beside
the manifest with the one in its tile folder: another run that rewrote the folder (a working
directory sharing ``resources/``) is caught before its tiles are packed as this manifest's.
:func:`validate` (the last step) reads the packed file (every chunk,
:func:`cloudfree.packed.validate_layout`) and the manifest: its tiles, dates, shapes and
optional layers (Sentinel-1 may be missing on some dates, the same in both).  Both write
nothing and raise :class:`~cloudfree.errors.InputDataError` naming what differs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from cloudfree.errors import InputDataError
from cloudfree.manifest import PATH_COLUMNS
from cloudfree.pack.load import optional_paths
from cloudfree.packed import decode_strings, open_packed, tile_names, validate_layout
from cloudfree.tiles.settings import TILES_STAMP, manifest_stamp_path, read_stamp

log = logging.getLogger(__name__)


def _points_into(manifest: pd.DataFrame, folder: str) -> bool:
    prefix = folder.rstrip("/\\") + os.sep
    for col in PATH_COLUMNS:
        if col in manifest.columns and manifest[col].astype(str).str.startswith(prefix).any():
            return True
    return False


def check_tiles_stamp(
    manifest_path: str | os.PathLike[str], manifest: pd.DataFrame | None = None
) -> None:
    """Refuse a manifest whose tile folder another run has rewritten since.

    The tile stage writes one download stamp into the tile folder and beside the manifest
    (:mod:`cloudfree.tiles.settings`); they differ when another run (with its own settings,
    or the same) made the folder anew.  A manifest without a stamp (written by hand) and one
    that points at no file in its tile folder (SEN12MS-CR-TS without cropping) are not
    checked.  Raises InputDataError naming the manifest, the folder and both stamps.
    """
    ours = read_stamp(manifest_stamp_path(manifest_path))
    if ours is None:
        log.info("%s: no download stamp beside it; its tile folder is not checked", manifest_path)
        return
    folder = ours["tiles"]
    if manifest is not None and not _points_into(manifest, folder):
        return
    theirs = read_stamp(Path(folder) / TILES_STAMP)
    if theirs is not None and (theirs["settings"], theirs["download"]) == (
        ours["settings"],
        ours["download"],
    ):
        return
    now = (
        f"download {theirs['download']} (settings {theirs['settings']})"
        if theirs is not None
        else "no download stamp"
    )
    raise InputDataError(
        f"{manifest_path}: written by download {ours['download']} (settings "
        f"{ours['settings']}), but its tile folder {folder} now holds {now}: another run "
        f"rewrote {folder} (a working directory sharing this resources folder, or a "
        f"download of region {ours['region']} with other settings), so these tiles are not "
        "this manifest's. Rerun download_tiles for the region (snakemake --forcerun "
        "download_tiles), or give each working directory its own resources folder"
    )


def validate(path: str | os.PathLike[str], manifest: pd.DataFrame) -> None:
    """Check a packed file against its manifest: tiles, splits, dates and shapes, which tiles
    have the optional layers and on which dates a tile lacks Sentinel-1.

    Raises :class:`InputDataError` listing every difference.
    """
    validate_layout(path)
    problems: list[str] = []
    with open_packed(path) as h5:
        region = str(manifest["region"].iloc[0])
        if str(h5.attrs["region"]) != region:
            problems.append(f"region {h5.attrs['region']!r}, manifest {region!r}")
        have = set(tile_names(h5))
        want = {str(t) for t in manifest["tile"].unique()}
        if have - want:
            problems.append(f"tiles not in the manifest: {sorted(have - want)[:5]}")
        if want - have:
            problems.append(f"tiles missing: {sorted(want - have)[:5]}")
        nb = len(h5.attrs["bands"])
        for name, rows in manifest.groupby("tile", sort=True):
            name = str(name)
            if name not in have:
                continue
            g = h5["tiles"][name]
            rows = rows.sort_values("date")
            dates = decode_strings(g["dates"][()])
            if dates != rows["date"].astype(str).tolist():
                problems.append(f"tile {name}: dates {dates} differ from the manifest's")
            shape = (len(rows), nb, int(rows["height"].iloc[0]), int(rows["width"].iloc[0]))
            if g["s2"].shape != shape:
                problems.append(f"tile {name}: s2 shape {g['s2'].shape}, manifest {shape}")
            if str(g.attrs["split"]) != str(rows["split"].iloc[0]):
                problems.append(
                    f"tile {name}: split {g.attrs['split']}, manifest {rows['split'].iloc[0]}"
                )
            for kind in ("probability", "s1"):
                paths = optional_paths(rows, kind)
                if (paths is not None) != (kind in g):
                    problems.append(f"tile {name}: {kind} presence differs from the manifest")
                elif paths is not None and f"sources/{kind}" in g:
                    packed = [bool(p) for p in decode_strings(g["sources"][kind][()])]
                    if packed != [bool(p) for p in paths]:
                        gone = [d for d, p in zip(dates, packed, strict=False) if not p]
                        problems.append(
                            f"tile {name}: dates without {kind} {gone[:5]} differ from the "
                            "manifest's"
                        )
    if problems:
        raise InputDataError(f"{path} does not match its manifest: " + "; ".join(problems[:10]))
