"""A source section's keys, and the stamp that ties a manifest to its tile folder.

:func:`check_keys`: a section must hold exactly the keys of the spec built from it.  The
schema fills in every default, so a section missing a key was not resolved against it
(``cloudfree.config.source_settings`` does that outside the workflow).

The download stamp (:func:`new_stamp`): the tile stage writes the same one into the tile
folder (``resources/tiles/<region>/.download.json``) and beside the manifest
(``results/tiles/<region>.download.json``): the hash of the settings the tiles were made
with, a unique id of the download and the tile folder.  Two working directories sharing
``resources/`` rewrite each other's tile folders; the stamps then differ, and packing
refuses the manifest whose tiles are gone (:func:`cloudfree.pack.check.check_tiles_stamp`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cloudfree.errors import ConfigError, InputDataError
from cloudfree.io import atomic_path

TILES_STAMP = ".download.json"  # in the tile folder
STAMP_SUFFIX = ".download.json"  # beside the manifest: results/tiles/<region>.download.json
STAMP_KEYS = ("region", "settings", "download", "tiles")


def check_keys(section: str, cfg: Mapping[str, Any], spec: type) -> None:
    """Raise ConfigError naming the keys of ``cfg`` that the dataclass ``spec`` does not have,
    or the ones it needs (fields without a default) that ``cfg`` lacks."""
    fields = dataclasses.fields(spec)
    unknown = sorted(str(k) for k in set(cfg) - {f.name for f in fields})
    if unknown:
        raise ConfigError(
            f"{section}: unknown keys {unknown}; known keys: {', '.join(f.name for f in fields)}"
        )
    missing = [
        f.name
        for f in fields
        if f.name not in cfg
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(
            f"{section}: missing keys {missing}; resolve the section against the config "
            "schema first (cloudfree.config.source_settings)"
        )


def manifest_stamp_path(manifest: str | os.PathLike[str]) -> Path:
    """The stamp beside a manifest: ``results/tiles/<region>.csv`` ->
    ``results/tiles/<region>.download.json``."""
    path = Path(manifest)
    return path.with_name(path.stem + STAMP_SUFFIX)


def new_stamp(region: str, settings: str, tiles_dir: str | os.PathLike[str]) -> dict[str, str]:
    """The stamp of one download: region, hash of its ``settings`` (a stable string), a
    unique download id and the tile folder (as given: relative to the working directory)."""
    return {
        "region": region,
        "settings": hashlib.sha256(settings.encode()).hexdigest()[:16],
        "download": uuid.uuid4().hex,
        "tiles": str(tiles_dir),
    }


def write_stamp(path: str | os.PathLike[str], stamp: Mapping[str, str]) -> Path:
    """Write a stamp atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(dict(stamp), sort_keys=True) + "\n")
    return Path(path)


def read_stamp(path: str | os.PathLike[str]) -> dict[str, str] | None:
    """A stamp, or None where there is none; one that is not a stamp is an InputDataError."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputDataError(f"{path}: cannot read the download stamp ({exc})") from exc
    try:
        stamp = json.loads(text)
    except json.JSONDecodeError:
        stamp = None
    if not isinstance(stamp, dict) or any(not isinstance(stamp.get(k), str) for k in STAMP_KEYS):
        raise InputDataError(
            f"{path}: not a download stamp (JSON with {', '.join(STAMP_KEYS)}); rerun "
            "download_tiles"
        )
    return {k: stamp[k] for k in STAMP_KEYS}
