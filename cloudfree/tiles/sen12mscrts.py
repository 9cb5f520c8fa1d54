"""The ``sen12mscrts`` source: the SEN12MS-CR-TS dataset as it lies on disk.

Layout after extraction: ``<root>/ROIs{1158,1868,1970,2017}/<roi>/{S1,S2}/<t>/`` with files
``{s1|s2}_ROIsXXXX_<roi>_ImgNo_<t>_<YYYY-MM-DD>_patch_<n>.tif`` (30 time points per patch,
256 px at 10 m; S2 13 bands uint16 DN, S1 VV/VH in dB).  The region's ROI lists and their
train/val/test splits are the dataset's own (``sen12mscrts_rois.csv``, source named there).
Nothing is copied: the manifest points at the dataset's files, or, when patches are cropped
into smaller tiles, at GDAL VRT windows of them (a few hundred bytes each).  The dataset has
no cloud masks; the tile stage runs the cloud detector on these rows.  Writes only the VRT
windows (``<dest>/<tile>/<date>_S2.vrt``, ``_S1.vrt``) and returns the manifest rows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from html import escape
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
from rasterio.windows import Window

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.io import atomic_path
from cloudfree.manifest import manifest_row
from cloudfree.tiles.grid import Grid, open_raster, tile_windows
from cloudfree.tiles.settings import check_keys

SOURCE = "sen12mscrts"
PATCH_PX = 256
FILE_RE = re.compile(
    r"^(?P<mod>s1|s2)_(?P<rois>ROIs\d{4})_(?P<roi>\d+)_ImgNo_(?P<t>\d+)_"
    r"(?P<date>\d{4}-\d{2}-\d{2})_patch_(?P<patch>\d+)\.tif$"
)
GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "float32": "Float32"}
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sen12mscrtsSpec:
    """The ``sen12mscrts`` section of a region (see the config schema for each key)."""

    root: str
    region: str | None
    splits: tuple[str, ...]
    rois: tuple[str, ...] | None
    patches: tuple[int, ...] | None
    max_patches: int | None
    s1: bool
    crop: int | None
    crop_overlap: int

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> Sen12mscrtsSpec:
        """Build from a resolved ``sen12mscrts`` section; checks what the schema cannot."""
        check_keys("sen12mscrts", cfg, cls)
        if not cfg["root"]:
            raise ConfigError("sen12mscrts.root: the dataset folder is required")
        args = dict(cfg)
        for key in ("splits", "rois", "patches"):
            if args[key] is not None:
                args[key] = tuple(args[key])
        return cls(**args)


@cache
def roi_table() -> pd.DataFrame:
    """Region, split and ROI (``ROIsXXXX/<n>``) of every dataset ROI list."""
    with resources.files(__package__).joinpath("sen12mscrts_rois.csv").open() as f:
        return pd.read_csv(f, comment="#", dtype=str)


def region_rois(region: str, splits: tuple[str, ...]) -> dict[str, str]:
    """ROI -> split for a dataset region; unknown regions are a ConfigError."""
    table = roi_table()
    if region not in set(table["region"]):
        raise ConfigError(
            f"sen12mscrts.region: {region!r} is not a SEN12MS-CR-TS region; choose one of "
            f"{sorted(set(table['region']))} (or set sen12mscrts.region)"
        )
    rows = table[(table["region"] == region) & table["split"].isin(splits)]
    return dict(zip(rows["roi"], rows["split"], strict=True))


def parse_name(path: Path) -> dict[str, Any]:
    """The parts of a dataset file name; a name that does not follow it is an error."""
    m = FILE_RE.match(path.name)
    if not m:
        raise InputDataError(
            f"{path}: not a SEN12MS-CR-TS file name "
            "({s1|s2}_ROIsXXXX_<roi>_ImgNo_<t>_<YYYY-MM-DD>_patch_<n>.tif); no date read"
        )
    d = m.groupdict()
    return {**d, "t": int(d["t"]), "patch": int(d["patch"])}


def scan_roi(roi_dir: Path, modality: str) -> dict[int, dict[str, Path]]:
    """Patch -> date -> file of one ROI and modality (S1 or S2); the first time point wins
    when two share a date."""
    out: dict[int, dict[str, Path]] = {}
    files = sorted(roi_dir.glob(f"{modality}/*/*.tif"), key=lambda p: parse_name(p)["t"])
    for path in files:
        info = parse_name(path)
        dates = out.setdefault(info["patch"], {})
        if info["date"] in dates:
            log.warning("%s: date %s is also %s; skipped", path, info["date"], dates[info["date"]])
            continue
        dates[info["date"]] = path
    return out


def write_window_vrt(src_path: Path, window: Window, dst: Path) -> Path:
    """A GDAL VRT showing ``window`` of ``src_path`` (no pixels copied)."""
    with open_raster(src_path) as src:
        wkt, transform = src.crs.to_wkt() if src.crs else "", src.window_transform(window)
        bands = []
        for b, (dtype, nodata) in enumerate(zip(src.dtypes, src.nodatavals, strict=True), start=1):
            nd = "" if nodata is None else f"<NoDataValue>{nodata!r}</NoDataValue>"
            desc = src.descriptions[b - 1] or ""
            bands.append(
                f'<VRTRasterBand dataType="{GDAL_TYPES[dtype]}" band="{b}">'
                f"<Description>{escape(desc)}</Description>{nd}<SimpleSource>"
                f'<SourceFilename relativeToVRT="0">{escape(str(src_path.resolve()))}'
                f"</SourceFilename><SourceBand>{b}</SourceBand>"
                f'<SrcRect xOff="{int(window.col_off)}" yOff="{int(window.row_off)}" '
                f'xSize="{int(window.width)}" ySize="{int(window.height)}"/>'
                f'<DstRect xOff="0" yOff="0" xSize="{int(window.width)}" '
                f'ySize="{int(window.height)}"/></SimpleSource></VRTRasterBand>'
            )
    gt = ", ".join(repr(v) for v in transform.to_gdal())
    xml = (
        f'<VRTDataset rasterXSize="{int(window.width)}" rasterYSize="{int(window.height)}">'
        f"<SRS>{escape(wkt)}</SRS><GeoTransform>{gt}</GeoTransform>{''.join(bands)}</VRTDataset>\n"
    )
    with atomic_path(dst) as tmp:
        tmp.write_text(xml)
    return dst


def _patch_grid(path: Path, first: Grid | None) -> Grid:
    with open_raster(path) as src:
        if src.count != len(S2_L1C_BANDS):
            raise InputDataError(f"{path}: {src.count} bands, SEN12MS-CR-TS S2 has 13")
        if src.crs is None:
            raise InputDataError(f"{path}: has no CRS")
        grid = Grid(src.crs, src.transform, src.width, src.height)
    if first is not None and (grid.transform != first.transform or grid.crs != first.crs):
        raise InputDataError(f"{path}: grid differs from the patch's first date")
    return grid


def sen12mscrts_tiles(region: str, cfg: Mapping[str, Any], dest: Path) -> pd.DataFrame:
    """Manifest rows of the configured ROIs, patches and dates (masks left empty)."""
    spec = Sen12mscrtsSpec.from_dict(cfg)
    root = Path(spec.root)
    ds_region = spec.region or region
    rois = region_rois(ds_region, spec.splits)
    if spec.rois:
        rois = {r: s for r, s in rois.items() if r in set(spec.rois)}
    if not rois:
        raise InputDataError(
            f"sen12mscrts: the ROI list of region {ds_region!r}, splits {list(spec.splits)}"
            + (f", rois {list(spec.rois)}" if spec.rois else "")
            + " is empty"
        )
    if not root.is_dir():
        raise InputDataError(f"{root}: SEN12MS-CR-TS folder does not exist (sen12mscrts.root)")
    windows = tile_windows(PATCH_PX, PATCH_PX, spec.crop, spec.crop_overlap) if spec.crop else {}
    wanted = set(spec.patches) if spec.patches else None
    rows: list[dict[str, Any]] = []
    found = 0
    for roi, split in sorted(rois.items()):
        roi_dir = root / roi
        if not roi_dir.is_dir():
            log.warning("%s: ROI folder missing; skipped", roi_dir)
            continue
        found += 1
        s2 = scan_roi(roi_dir, "S2")
        s1 = scan_roi(roi_dir, "S1") if spec.s1 else {}
        patches = sorted(p for p in s2 if wanted is None or p in wanted)
        if spec.max_patches:
            patches = patches[: spec.max_patches]
        for patch in patches:
            base = f"{roi.replace('/', '_')}_p{patch}"
            s1_by_t = {parse_name(p)["t"]: p for p in s1.get(patch, {}).values()}
            grid = None
            for iso, path in sorted(s2[patch].items()):
                grid = _patch_grid(path, grid)
                s1_path = s1_by_t.get(parse_name(path)["t"])
                if spec.s1 and s1_path is None:
                    raise InputDataError(f"{path}: no S1 file of the same time point")
                if not windows:
                    rows.append(manifest_row(
                        region, SOURCE, base, iso, split, grid,
                        image=str(path.resolve()), s1=str(s1_path.resolve()) if s1_path else "",
                    ))  # fmt: skip
                    continue
                for tid, win in windows.items():
                    tile = f"{base}_{tid}"
                    image = write_window_vrt(path, win, dest / tile / f"{iso}_S2.vrt")
                    s1_vrt = (
                        str(write_window_vrt(s1_path, win, dest / tile / f"{iso}_S1.vrt"))
                        if s1_path
                        else ""
                    )
                    rows.append(manifest_row(
                        region, SOURCE, tile, iso, split, grid.window(win),
                        image=str(image), s1=s1_vrt,
                    ))  # fmt: skip
    if not found:
        raise InputDataError(
            f"{root}: none of the {len(rois)} ROI folders of region {ds_region!r} "
            f"(like {next(iter(sorted(rois)))}) is there"
        )
    if not rows:
        raise InputDataError(f"{root}: no S2 patches in the selected ROIs and patches")
    return pd.DataFrame(rows)
