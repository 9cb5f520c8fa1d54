"""Check a packed file against the manifest it was packed from (rule pack_hdf5's last step).

Reads the packed file (every chunk, :func:`cloudfree.packed.validate_layout`) and the
manifest; writes nothing, raises :class:`~cloudfree.errors.InputDataError` listing the
differences.
"""

from __future__ import annotations

import os

import pandas as pd

from cloudfree.errors import InputDataError
from cloudfree.pack.load import optional_paths
from cloudfree.packed import decode_strings, open_packed, tile_names, validate_layout


def validate(path: str | os.PathLike[str], manifest: pd.DataFrame) -> None:
    """Check a packed file against its manifest: tiles, splits, dates and shapes.

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
                if (optional_paths(rows, kind) is not None) != (kind in g):
                    problems.append(f"tile {name}: {kind} presence differs from the manifest")
    if problems:
        raise InputDataError(f"{path} does not match its manifest: " + "; ".join(problems[:10]))
