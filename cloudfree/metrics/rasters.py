"""The GeoTIFFs of one reconstructed date read for scoring (:func:`read_date`): a prediction,
its mask (the pixels hidden from the method), the truth and, optionally, the truth's cloud
mask; everything :func:`cloudfree.metrics.single.score_date` needs, checked first.

What is checked, each error naming the file, before any pixel is read or cast: the file opens;
all bands of one type, integers or floats for the images, integers for the cloud mask;
the same grid (CRS, transform, width and height) as the truth; the prediction as many bands
as the truth, the masks one; the memory scoring would take.  Then the values: the mask 0 or 1
only, the cloud mask the classes of :mod:`cloudfree.bands` only, the images plausible
reflectance once scaled (at most ``OUTSIDE_MAX`` of the valid values outside ``PLAUSIBLE``,
as for the folder source's images).

Reflectance is ``value * scale + offset``: by default the file's own band scales and offsets
(GDAL metadata, as the workflow's predictions carry) when it has any, else ``1 /
REFLECTANCE_SCALE`` for integers (DN) and 1 for floats.  Integers become float32, as the
packed tiles' reflectance; floats keep their precision.  A pixel where every band holds the
file's nodata value (or NaN) has no data: NaN in every band, as in the packed tiles.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import RasterioError

from cloudfree.bands import CLEAR, MASK_CLASSES, MASK_NODATA, REFLECTANCE_SCALE, S2_L1C_BANDS
from cloudfree.errors import InputDataError
from cloudfree.tiles.folder_checks import OUTSIDE_MAX, PLAUSIBLE
from cloudfree.tiles.grid import open_raster, physical_memory

# Bytes scoring takes per band and pixel: the images as read and as float, the product, the
# SSIM moments and their filtered copies (float64), and the SSIM maps kept for two images.
SCORE_BYTES_PER_VALUE = 200
GB = 1e9
KIND_NAMES = {"u": "integers", "i": "integers", "f": "floats"}


@dataclass(frozen=True)
class Header:
    """What a file's header says, read before its pixels."""

    path: str
    role: str  # prediction, mask, truth or clouds
    count: int
    height: int
    width: int
    dtype: np.dtype
    crs: CRS | None
    transform: Affine
    nodata: float | None
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    descriptions: tuple[str | None, ...]

    @property
    def at(self) -> str:
        return f"{self.role} {self.path}"


@dataclass(frozen=True)
class DateInputs:
    """One date ready to score: (C, H, W) reflectance of the prediction and the truth, the
    (H, W) gap, clear and valid pixels, and the band names."""

    raw: np.ndarray
    truth: np.ndarray
    gap: np.ndarray
    clear: np.ndarray
    valid: np.ndarray
    bands: tuple[str, ...]


def read_header(path: str | os.PathLike[str], role: str, kinds: str) -> Header:
    """The header of one file; its bands must share one type of a kind in ``kinds`` (numpy
    kind letters)."""
    with open_raster(path, f"{role} GeoTIFF") as src:
        dtypes = set(src.dtypes)
        if len(dtypes) != 1:
            raise InputDataError(f"{role} {path}: bands of several types ({', '.join(dtypes)})")
        dtype = np.dtype(dtypes.pop())
        if dtype.kind not in kinds:
            wanted = " or ".join(dict.fromkeys(KIND_NAMES[k] for k in kinds))
            raise InputDataError(f"{role} {path}: {dtype} pixels; expected {wanted}")
        return Header(
            str(path), role, src.count, src.height, src.width, dtype, src.crs, src.transform,
            src.nodata, tuple(src.scales), tuple(src.offsets), tuple(src.descriptions),
        )  # fmt: skip


def check_grid(header: Header, truth: Header) -> None:
    """``header`` on the truth's grid: CRS, transform (to a millionth of a pixel) and size."""
    where = f"{header.at} and truth {truth.path}"
    if (header.width, header.height) != (truth.width, truth.height):
        raise InputDataError(
            f"{where} differ in size: {header.width} x {header.height} px and "
            f"{truth.width} x {truth.height} px"
        )
    if (header.crs is None) != (truth.crs is None) or (
        header.crs is not None and header.crs != truth.crs
    ):
        raise InputDataError(f"{where} differ in CRS: {header.crs} and {truth.crs}")
    pixel = max(abs(truth.transform.a), abs(truth.transform.e), 1e-300)
    if not header.transform.almost_equals(truth.transform, precision=pixel * 1e-6):
        raise InputDataError(
            f"{where} differ in transform: {tuple(header.transform)[:6]} and "
            f"{tuple(truth.transform)[:6]}"
        )


def check_memory(truth: Header) -> None:
    """Refuse an image whose scoring would not fit in this machine's memory."""
    need = truth.count * truth.height * truth.width * SCORE_BYTES_PER_VALUE
    have = physical_memory()
    if have is not None and need > have:
        raise InputDataError(
            f"{truth.at}: {truth.count} bands of {truth.width} x {truth.height} px would need "
            f"about {need / GB:.1f} GB of memory to score, above this machine's "
            f"{have / GB:.1f} GB; score it in tiles"
        )


def band_names(prediction: Header, truth: Header, given: tuple[str, ...] | None) -> tuple[str, ...]:
    """The band names of the per-band columns: ``given``, else the files' band descriptions
    (the prediction's and the truth's must agree where both have them), else the 13 L1C
    bands for 13 bands, else ``band1 .. bandN``."""
    n = truth.count
    if given is not None:
        names = given
        if len(names) != n:
            raise InputDataError(f"{len(names)} band names given for the {n} bands of {truth.at}")
    else:
        described = [h.descriptions for h in (truth, prediction) if all(d for d in h.descriptions)]
        if len(described) == 2 and described[0] != described[1]:
            raise InputDataError(
                f"{prediction.at} and truth {truth.path} name their bands differently "
                f"({', '.join(map(str, prediction.descriptions))} and "
                f"{', '.join(map(str, truth.descriptions))}): are the bands in the same order?"
            )
        if described:
            names = tuple(str(d) for d in described[0])
        elif n == len(S2_L1C_BANDS):
            names = S2_L1C_BANDS
        else:
            names = tuple(f"band{i}" for i in range(1, n + 1))
    if len(set(names)) != len(names) or not all(names):
        raise InputDataError(f"band names of {truth.at} must be unique: {', '.join(names)}")
    return tuple(names)


def _scaling(
    header: Header, scale: float | None, offset: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per band (scale, offset): the given ones, else the file's, else the dtype's default."""
    tagged = any(s != 1 for s in header.scales) or any(o != 0 for o in header.offsets)
    default = 1.0 if header.dtype.kind == "f" else 1.0 / REFLECTANCE_SCALE
    scales = np.asarray(header.scales if tagged else (default,) * header.count, dtype=np.float64)
    offsets = np.asarray(header.offsets if tagged else (0.0,) * header.count, dtype=np.float64)
    if scale is not None:
        scales = np.full(header.count, float(scale))
    if offset is not None:
        offsets = np.full(header.count, float(offset))
    if not (np.isfinite(scales).all() and (scales > 0).all() and np.isfinite(offsets).all()):
        raise InputDataError(
            f"{header.at}: band scales {_show(scales)} and offsets {_show(offsets)} are no "
            f"reflectance scaling; give its --{header.role}-scale and --{header.role}-offset"
        )
    return scales, offsets


def _pixels(header: Header) -> np.ndarray:
    with open_raster(header.path, f"{header.role} GeoTIFF") as src:
        try:
            return src.read()
        except (RasterioError, OSError) as exc:  # a truncated or corrupt file
            raise InputDataError(f"{header.at}: cannot read its pixels ({exc})") from exc


def read_reflectance(
    header: Header, scale: float | None, offset: float | None, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(C, H, W) reflectance of an image (NaN where it has no data, or outside ``valid``) and
    the (H, W) pixels with data."""
    data = _pixels(header)
    nodata = header.nodata
    if header.dtype.kind == "f":
        missing = np.isnan(data)
        if nodata is not None and not np.isnan(nodata):
            missing |= data == nodata
    else:
        missing = np.zeros(data.shape, dtype=bool) if nodata is None else (data == nodata)
    has_data = ~missing.all(axis=0)
    scales, offsets = _scaling(header, scale, offset)
    out_type = header.dtype if header.dtype.kind == "f" else np.dtype(np.float32)
    refl = (data.astype(np.float64) * scales[:, None, None] + offsets[:, None, None]).astype(
        out_type
    )
    keep = has_data if valid is None else has_data & valid
    refl[:, ~keep] = np.nan
    _check_plausible(header, refl[:, keep], scales, offsets)
    return refl, has_data


def _check_plausible(
    header: Header, values: np.ndarray, scales: np.ndarray, offsets: np.ndarray
) -> None:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return
    low, high = PLAUSIBLE
    outside = float(((finite < low) | (finite > high)).mean())
    if outside > OUTSIDE_MAX:
        raise InputDataError(
            f"{header.at}: {outside:.1%} of its values are no plausible reflectance "
            f"({low:g} to {high:g}) with scale {_show(scales)} and offset {_show(offsets)}; "
            f"give its --{header.role}-scale and --{header.role}-offset"
        )


def _show(values: np.ndarray) -> str:
    unique = sorted({float(v) for v in values})
    return ", ".join(f"{v:g}" for v in unique)


def read_mask(header: Header, allowed: tuple[int, ...]) -> np.ndarray:
    """The (H, W) values of a one-band mask, each one of ``allowed``."""
    if header.count != 1:
        raise InputDataError(f"{header.at}: {header.count} bands; a mask has one")
    data = _pixels(header)[0]
    bad = ~np.isin(data, allowed)
    if bad.any():
        shown = ", ".join(f"{v:g}" for v in np.unique(data[bad])[:5])
        raise InputDataError(
            f"{header.at}: {int(bad.sum())} pixels hold values other than "
            f"{', '.join(map(str, allowed))} (e.g. {shown})"
        )
    return data


def read_date(
    prediction: str | os.PathLike[str],
    mask: str | os.PathLike[str],
    truth: str | os.PathLike[str],
    *,
    clouds: str | os.PathLike[str] | None = None,
    bands: tuple[str, ...] | None = None,
    scaling: dict[str, tuple[float | None, float | None]] | None = None,
) -> DateInputs:
    """The checked inputs of :func:`cloudfree.metrics.single.score_date` from the files.

    ``mask``: 1 where the pixel was hidden from the method, 0 where it saw it.  ``clouds``
    (optional): the truth's cloud classes; only its clear pixels have a known truth (without
    it every pixel with data has).  ``scaling`` maps ``prediction``/``truth`` to the
    (scale, offset) to use (None: the default, see the module).  The valid pixels are those
    where the truth has data (and ``clouds`` is not nodata)."""
    true = read_header(truth, "truth", "uif")
    pred = read_header(prediction, "prediction", "uif")
    gap_header = read_header(mask, "mask", "uif")
    cloud_header = read_header(clouds, "clouds", "ui") if clouds is not None else None
    for header in (pred, gap_header, cloud_header):
        if header is not None:
            check_grid(header, true)
    if pred.count != true.count:
        raise InputDataError(
            f"{pred.at} has {pred.count} bands, truth {true.path} has {true.count}"
        )
    check_memory(true)
    names = band_names(pred, true, bands)
    scaling = scaling or {}
    gap = read_mask(gap_header, (0, 1)).astype(bool)
    classes = (
        read_mask(cloud_header, (*sorted(MASK_CLASSES.values()), MASK_NODATA))
        if cloud_header is not None
        else None
    )
    known = None if classes is None else classes != MASK_NODATA
    truth_refl, has_data = read_reflectance(true, *scaling.get("truth", (None, None)), known)
    valid = has_data if known is None else has_data & known
    clear = valid if classes is None else valid & (classes == CLEAR)
    raw, _ = read_reflectance(pred, *scaling.get("prediction", (None, None)))
    return DateInputs(raw, truth_refl, gap, clear, valid, names)
