"""File I/O at the edges: atomic writes and georeferenced rasters."""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioError

from cloudfree.errors import InputDataError, StorageError

log = logging.getLogger(__name__)

# Written into every directory :func:`atomic_path` moves into place: an existing directory
# under an output's name is replaced only when it carries one (cloudfree wrote it).
OUTPUT_MARKER = ".cloudfree-output"
MARKER_TEXT = "Written by cloudfree; the next run may replace this folder as a whole.\n"
_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_NEARLY_FULL = 1 << 20
_SPACE_WORDS = ("no space left", "disk space", "disk full", "quota exceeded", "file too large")


def _out_of_space(exc: BaseException) -> bool:
    """True if ``exc`` (or an error it wraps) says the disk, quota or file-size limit is hit."""
    seen: set[int] = set()
    err: BaseException | None = exc
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, StorageError):
            return False  # already translated by an inner atomic_path
        if isinstance(err, OSError) and err.errno in _SPACE_ERRNOS:
            return True
        if any(word in str(err).lower() for word in _SPACE_WORDS):
            return True
        err = err.__cause__ or err.__context__
    return False


def _nearly_full(path: Path) -> bool:
    """The filesystem of ``path`` has under 1 MiB left (GDAL reports ENOSPC only on stderr)."""
    try:
        return shutil.disk_usage(path.parent).free < _NEARLY_FULL
    except OSError:
        return False


def _free(path: Path) -> str:
    try:
        return f"{shutil.disk_usage(path.parent).free / 1e6:.1f} MB free on its filesystem"
    except OSError:
        return "free space unknown"


def _tmp_sibling(path: Path, kind: str = "tmp") -> Path:
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _check_replaceable(final: Path, new_is_dir: bool | None) -> None:
    """Raise StorageError unless what lies at ``final`` may be replaced by the new output (a
    directory when ``new_is_dir``; None: not known yet).  A directory is replaced only by a
    directory and only when it carries :data:`OUTPUT_MARKER`; a file (or a link) only by a
    file."""
    why = None
    if _is_real_dir(final):
        if not (final / OUTPUT_MARKER).is_file():
            why = "is a directory that cloudfree did not write"
        elif new_is_dir is False:
            why = "is a directory and the new output is a file"
    elif new_is_dir and (final.exists() or final.is_symlink()):
        why = "is not a directory and the new output is one"
    if why is not None:
        raise StorageError(
            errno.EEXIST, f"{final} exists and {why}; move it away (nothing was replaced)"
        )


def _move_into_place(tmp: Path, final: Path) -> None:
    """``os.replace(tmp, final)``; a directory that cloudfree wrote under ``final`` is first
    moved aside and removed once the new one is in place."""
    if not (_is_real_dir(tmp) and _is_real_dir(final)):
        os.replace(tmp, final)
        return
    old = _tmp_sibling(final, "old")
    os.replace(final, old)
    try:
        os.replace(tmp, final)
    except BaseException:
        os.replace(old, final)
        raise
    try:
        shutil.rmtree(old)
    except OSError as exc:
        log.warning("could not remove the replaced output %s: %s", old, exc)


def replace_directory(tmp: Path, final: Path) -> None:
    """Move the finished directory ``tmp`` to ``final`` with :data:`OUTPUT_MARKER`, replacing
    a directory cloudfree wrote there; anything else under ``final`` is refused
    (StorageError naming it) and left untouched."""
    _check_replaceable(final, True)
    (tmp / OUTPUT_MARKER).write_text(MARKER_TEXT)
    _move_into_place(tmp, final)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; move it into place only if the block succeeds.

    A killed or failing writer leaves at most a hidden ``.name.tmp-*`` file, never a
    half-written file under the final name.  Works for files and for directories: a
    directory gets :data:`OUTPUT_MARKER` before it is moved into place.  Nothing that
    cloudfree did not write is deleted: a directory under the final name without that marker
    (or any directory, when the output is a file) is refused with a StorageError naming it,
    before the block runs when it is already there, and then both are left untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    _check_replaceable(final, None)  # before the work, not after it
    tmp = _tmp_sibling(final)
    try:
        yield tmp
        new_is_dir = _is_real_dir(tmp)
        if new_is_dir:
            (tmp / OUTPUT_MARKER).write_text(MARKER_TEXT)
        if tmp.exists() or tmp.is_symlink():
            _check_replaceable(final, new_is_dir)
        _move_into_place(tmp, final)
    except Exception as exc:
        if _out_of_space(exc) or (
            isinstance(exc, (OSError, RasterioError, RuntimeError))
            and not isinstance(exc, StorageError)  # already translated by an inner writer
            and _nearly_full(final)
        ):
            raise StorageError(
                errno.ENOSPC, f"no space left while writing {final} ({_free(final)}): {exc}"
            ) from exc
        raise
    finally:
        if _is_real_dir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists() or tmp.is_symlink():
            tmp.unlink()


def geotiff_profile(
    *,
    crs: Any,
    transform: Any,
    width: int,
    height: int,
    count: int,
    dtype: str,
    nodata: float | int | None,
    compress: str = "deflate",
    blocksize: int = 256,
    cog: bool = False,
    overview_resampling: str = "average",
) -> dict[str, Any]:
    """A tiled, compressed GeoTIFF profile (blocks shrink to fit small rasters).

    With ``cog`` the profile is for GDAL's COG driver: internal overviews, 256 px blocks.
    """
    profile: dict[str, Any] = {
        "driver": "COG" if cog else "GTiff",
        "crs": crs,
        "transform": transform,
        "width": width,
        "height": height,
        "count": count,
        "dtype": dtype,
        "nodata": nodata,
        "compress": compress,
    }
    if cog:
        profile.update(
            blocksize=blocksize, overviews="AUTO", overview_resampling=overview_resampling
        )
        profile["predictor"] = "YES" if compress != "none" else "NO"
        return profile
    if width >= 16 and height >= 16:
        block = max(16, min(blocksize, 1 << (min(width, height).bit_length() - 1)))
        block -= block % 16
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    if compress in ("deflate", "zstd", "lzw"):
        profile["predictor"] = 3 if np.dtype(dtype).kind == "f" else 2
    return profile


def write_raster(
    path: str | os.PathLike[str],
    data: np.ndarray,
    profile: Mapping[str, Any],
    *,
    band_names: Sequence[str] | None = None,
    tags: Mapping[str, Any] | None = None,
    scales: Sequence[float] | None = None,
    offsets: Sequence[float] | None = None,
) -> Path:
    """Write a (bands, rows, cols) or (rows, cols) array atomically as a GeoTIFF; ``tags``
    as :func:`tag_text`, ``scales``/``offsets`` (one per band) as GDAL's band scale and
    offset, so a GIS shows ``value * scale + offset``."""
    arr = data[np.newaxis] if data.ndim == 2 else data
    prof = dict(profile)
    prof.update(count=arr.shape[0], height=arr.shape[1], width=arr.shape[2], dtype=arr.dtype.name)
    if prof.get("driver") == "GTiff" and prof.get("predictor") is not None:
        prof["predictor"] = 3 if arr.dtype.kind == "f" else 2
    final = Path(path)
    with atomic_path(final) as tmp:
        with rasterio.open(tmp, "w", **prof) as dst:
            dst.write(arr)
            for i, name in enumerate(band_names or (), start=1):
                if name:
                    dst.set_band_description(i, name)
            if tags:
                dst.update_tags(**tag_text(tags))
            if scales is not None:
                dst.scales, dst.offsets = tuple(scales), tuple(offsets or (0.0,) * len(scales))
    return final


def tag_text(tags: Mapping[str, Any]) -> dict[str, str]:
    """GeoTIFF metadata tags as text: strings as they are, anything else as JSON (one
    format for numbers, lists and mappings, readable by ``json.loads``)."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in tags.items()}


def read_raster(path: str | os.PathLike[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Read all bands and the profile; an unreadable file raises InputDataError naming it."""
    data, profile, _ = read_raster_named(path)
    return data, profile


def read_raster_named(
    path: str | os.PathLike[str],
) -> tuple[np.ndarray, dict[str, Any], tuple[str | None, ...]]:
    """:func:`read_raster` and the band descriptions, from one opening of the file."""
    try:
        with rasterio.open(path) as src:
            return src.read(), dict(src.profile), tuple(src.descriptions)
    except (RasterioError, OSError) as exc:
        raise InputDataError(f"cannot read raster {path}: {exc}") from exc
