"""Cloud masks where a source has none: s2cloudless on L1C, the SCL classes on L2A.

s2cloudless (Sentinel Hub) is a LightGBM model of 170 trees with 770 leaves each, shipped
inside its PyPI package.  As published, almost all of its time is spent in LightGBM's
``predict``.  The ``compiled`` backend evaluates the same model file compiled to machine
code with lleaves (LLVM, from PyPI); everything else (band choice, reflectance scaling,
averaging over a disk, threshold, dilation) is s2cloudless's own code, so on the tile's own
grid the answers are those of the published detector.  Compiling takes minutes once per
machine; the object code is cached (``clouds.detector.cache_dir``, ``$CLOUDFREE_CACHE`` or
``~/.cache/cloudfree``) under a name holding the model's hash, the lleaves and llvmlite
versions and the CPU, so a cache is never used for another model or CPU.  The object code
is taken from LLVM in memory and written atomically (a temporary name, then a rename) with
its SHA-256 in a sidecar ``<name>.sha256``; before use the file is checked against it, and a
file that does not match (truncated by a full disk, damaged, half-copied to a shared home,
or without its hash) is compiled again with a warning naming it, instead of aborting the
process with ``LLVM ERROR``.

The model runs on a working grid (:mod:`~cloudfree.clouds.working_grid`): each date
averaged over blocks of ``clouds.detector.resolution`` metres (s2cloudless was made for a
coarse grid; ``null``: the tile's own pixels, as published), all dates of a tile in one model
call on the job's threads; the probabilities are brought back to the tile grid (bilinear)
before s2cloudless's averaging, threshold and dilation, which run on the tile grid.

Reads a manifest's L1C images; writes ``masks/<tile>/<date>_mask.tif`` and
``_probability.tif`` in the tile folder.  Settings: the resolved ``clouds.detector`` section.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from functools import cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cloudfree.bands import (
    CLEAR,
    CLOUD,
    MASK_NODATA,
    REFLECTANCE_SCALE,
    S2_L1C_BANDS,
    SHADOW,
    THIN_CLOUD,
)
from cloudfree.clouds.working_grid import coarse_shape, downsample, tile_factor, upsample
from cloudfree.errors import ConfigError, InputDataError
from cloudfree.extras import import_optional
from cloudfree.io import atomic_path, geotiff_profile, read_raster, write_raster
from cloudfree.progress import tracked

log = logging.getLogger(__name__)

# Sentinel-2 L2A scene classification (SCL) values -> mask classes; others are clear.
SCL_CLASSES: dict[int, int] = {
    0: MASK_NODATA,  # no data
    1: MASK_NODATA,  # saturated or defective
    3: SHADOW,  # cloud shadows
    8: CLOUD,  # cloud, medium probability
    9: CLOUD,  # cloud, high probability
    10: THIN_CLOUD,  # thin cirrus
}

# The ``clouds.detector`` settings a mask file records in its tags (all but the cache folder).
TAGGED_SETTINGS = ("threshold", "average_over", "dilation_size", "backend", "resolution")
# Working-grid pixels per model call (their 10 bands, float32 then float64: about 0.5 GB).
MAX_BATCH_PIXELS = 1 << 22
# Without inlining, each tree is one function: LLVM compiles the 170 trees in about a minute
# of CPU instead of far over ten, at a small cost in speed.
COMPILE_OPTIONS: dict[str, Any] = {"finline": False}
HASH_SUFFIX = ".sha256"  # sidecar of a compiled model: the SHA-256 of its bytes


def scl_to_mask(scl: np.ndarray) -> np.ndarray:
    """Map an SCL raster (any shape) to the uint8 mask classes of :mod:`cloudfree.bands`."""
    lut = np.full(256, CLEAR, dtype=np.uint8)
    for value, cls in SCL_CLASSES.items():
        lut[value] = cls
    return lut[np.asarray(scl).astype(np.uint8)]


def l2a_mask(scl: np.ndarray | None, *, source: str, tile: str, date: str = "") -> np.ndarray:
    """The mask of an L2A date from its SCL band; a missing SCL is an error naming the date."""
    if scl is None:
        raise InputDataError(
            f"source {source}, tile {tile}{', date ' + date if date else ''}: the L2A product "
            "has no scene classification (SCL) band, needed for its cloud mask; give the SCL "
            "asset or masks of its own"
        )
    return scl_to_mask(scl)


def model_file() -> Path:
    """The LightGBM model file shipped inside the s2cloudless package."""
    # heavy (LightGBM, seconds to import): only where masks are detected
    cd = import_optional("s2cloudless.cloud_detector", "detector")

    return Path(cd.__file__).parent / "models" / cd.MODEL_FILENAME


def cache_dir(settings: Mapping[str, Any]) -> Path:
    """Folder of the compiled model: ``cache_dir`` of the ``clouds.detector`` settings, else
    ``$CLOUDFREE_CACHE``, else ``~/.cache/cloudfree``."""
    configured = settings["cache_dir"]
    if configured:
        return Path(configured)
    env = os.environ.get("CLOUDFREE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "cloudfree"


def _cache_name() -> str:
    """File name of the compiled model: model hash, tool versions, options and CPU."""
    llvm = import_optional("llvmlite.binding", "detector")  # the compiled backend only

    digest = hashlib.sha256(model_file().read_bytes()).hexdigest()[:16]
    tools = f"lleaves{version('lleaves')}-llvmlite{version('llvmlite')}"
    opts = "-".join(f"{k}{v}" for k, v in sorted(COMPILE_OPTIONS.items()))
    features = llvm.get_host_cpu_features().flatten()
    cpu = f"{llvm.get_host_cpu_name()}-{hashlib.sha256(features.encode()).hexdigest()[:8]}"
    return f"s2cloudless-{digest}-{tools}-{opts}-{cpu}.o"


def hash_path(path: Path) -> Path:
    """The sidecar holding the SHA-256 of the compiled model at ``path``."""
    return path.with_name(path.name + HASH_SUFFIX)


def verified(path: Path) -> bool:
    """Whether the compiled model at ``path`` exists and matches the hash in its sidecar.

    A file that does not match (or has no sidecar) gets a warning naming it.
    """
    if not path.exists():
        return False
    sidecar = hash_path(path)
    try:
        recorded = sidecar.read_text().split() if sidecar.exists() else []
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError as exc:
        log.warning("cannot check the compiled model %s against %s (%s): compiling it again",
                    path, sidecar, exc)  # fmt: skip
        return False
    if not recorded or recorded[0] != actual:
        log.warning(
            "compiled model %s does not match its hash %s (truncated, damaged or written "
            "without one): compiling it again", path, sidecar,
        )  # fmt: skip
        return False
    return True


def compile_object(model: Path) -> bytes:
    """Object code of the LightGBM model file ``model`` for this CPU, compiled by lleaves
    with :data:`COMPILE_OPTIONS`; what lleaves would write as its cache, taken in memory."""
    llvm = import_optional("llvmlite.binding", "detector")  # the compiled backend only
    compile_to_module = import_optional("lleaves.compiler", "detector").compile_to_module

    module = compile_to_module(str(model), **COMPILE_OPTIONS)
    llvm.initialize()
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # LLVM cannot detect them: lleaves uses none either
        features = ""
    target = llvm.Target.from_triple(llvm.get_process_triple())
    # the target machine lleaves loads a cached object with (host CPU, PIC, large code model)
    machine = target.create_target_machine(
        cpu=llvm.get_host_cpu_name(), features=features, reloc="pic", codemodel="large"
    )
    engine = llvm.create_mcjit_compiler(module, machine)
    module.data_layout = str(engine.target_data)
    objects: list[bytes] = []
    engine.set_object_cache(notify_func=lambda _module, buffer: objects.append(bytes(buffer)))
    engine.finalize_object()
    if len(objects) != 1:
        raise RuntimeError(f"LLVM produced {len(objects)} object files for {model}, expected 1")
    return objects[0]


def write_compiled(path: Path, code: bytes) -> None:
    """Write object code and its hash sidecar, each atomically; the object last, so a file
    under the final name always has its hash written before it."""
    with atomic_path(hash_path(path)) as tmp:
        tmp.write_text(f"{hashlib.sha256(code).hexdigest()}  {path.name}\n")
    with atomic_path(path) as tmp:
        tmp.write_bytes(code)


def compiled_model(directory: Path) -> Path:
    """The verified compiled model of :func:`model_file` in ``directory``, compiled and
    written first when it is missing or does not match its hash.

    A folder that cannot be written (read-only or full) gives a warning and a temporary one.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only home: compile into a temporary folder instead
        log.warning("cannot use the cache folder %s (%s); using a temporary one", directory, exc)
        directory = Path(tempfile.mkdtemp(prefix="cloudfree-cache-"))
    path = directory / _cache_name()
    if verified(path):
        return path
    log.info("compiling the s2cloudless model (once per machine), cache %s", path)
    code = compile_object(model_file())
    try:
        write_compiled(path, code)
    except OSError as exc:  # full or read-only: this run uses a temporary copy
        path = Path(tempfile.mkdtemp(prefix="cloudfree-cache-")) / path.name
        log.warning("cannot write the compiled model to its cache (%s); using %s", exc, path)
        write_compiled(path, code)
    return path


def default_threads() -> int:
    """Threads of a model call when none are given: the CPUs this process may run on."""
    return len(os.sched_getaffinity(0))


class CompiledForest:
    """The s2cloudless model compiled by lleaves, with the classifier API s2cloudless uses."""

    def __init__(self, directory: Path, n_jobs: int | None = None) -> None:
        lleaves = import_optional("lleaves", "detector")  # the compiled backend only

        self.path = compiled_model(directory)
        self.model = lleaves.Model(model_file=str(model_file()))
        self.model.compile(cache=str(self.path), **COMPILE_OPTIONS)
        self.n_jobs = n_jobs or default_threads()

    def predict(self, x: np.ndarray, n_jobs: int | None = None) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64)
        return self.model.predict(x, n_jobs=n_jobs or self.n_jobs)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        p = self.predict(x)
        return np.stack([1.0 - p, p], axis=1)


class Threaded:
    """A model (:class:`CompiledForest` or LightGBM ``Booster``) run on ``threads`` threads,
    with the classifier API s2cloudless uses."""

    def __init__(self, model: Any, threads: int) -> None:
        self.model, self.threads = model, threads

    def predict(self, x: np.ndarray) -> np.ndarray:
        key = "n_jobs" if isinstance(self.model, CompiledForest) else "num_threads"
        return self.model.predict(x, **{key: self.threads})

    predict_proba = CompiledForest.predict_proba


@cache
def compiled_forest(directory: str) -> CompiledForest:
    """The compiled model of one cache folder, built (or loaded) once per process."""
    return CompiledForest(Path(directory))


@cache
def booster() -> Any:
    """s2cloudless's LightGBM model as published, loaded once per process."""
    lightgbm = import_optional("lightgbm", "detector")  # heavy: the lightgbm backend only
    return lightgbm.Booster(model_file=str(model_file()))


def compiled_available() -> bool:
    """Whether the compiled backend can run here (lleaves with a usable llvmlite)."""
    try:  # optional dependencies: the lightgbm backend works without them
        import lleaves  # noqa: F401
        import llvmlite.binding as llvm

        return hasattr(llvm, "PassManagerBuilder")  # lleaves 1.3 needs llvmlite < 0.45
    except ImportError:
        return False


def make_detector(settings: Mapping[str, Any], threads: int | None = None) -> Any:
    """An ``s2cloudless.S2PixelCloudDetector`` taking the model's 10 bands (see
    :func:`working_features`) on the backend of the resolved ``clouds.detector`` settings,
    its model run on ``threads`` threads (default: :func:`default_threads`)."""
    # heavy (LightGBM, seconds to import): only sources without masks need it
    s2cloudless = import_optional("s2cloudless", "detector")
    classifier = import_optional("s2cloudless.pixel_classifier", "detector")
    det = s2cloudless.S2PixelCloudDetector(
        threshold=float(settings["threshold"]),
        average_over=int(settings["average_over"]),
        dilation_size=int(settings["dilation_size"]),
        all_bands=False,
    )
    backend = settings["backend"]
    if backend == "auto":
        backend = "compiled" if compiled_available() else "lightgbm"
    if backend == "compiled":
        if not compiled_available():
            raise ConfigError(
                "clouds.detector.backend: 'compiled' needs lleaves with llvmlite < 0.45 "
                "(pip install lleaves 'llvmlite<0.45')"
            )
        model = compiled_forest(str(cache_dir(settings)))
    else:
        model = booster()
    det._classifier = classifier.PixelClassifier(Threaded(model, threads or default_threads()))
    return det


def working_features(
    image: np.ndarray, valid: np.ndarray, factor: int
) -> tuple[np.ndarray, np.ndarray]:
    """The model's 10 bands of a (13, H, W) L1C DN image as reflectance on the working grid
    (``(h, w, 10)`` float32), and each block's share of ``valid`` pixels."""
    utils = import_optional("s2cloudless.utils", "detector")  # heavy: only when detecting
    data = np.moveaxis(image[utils.MODEL_BAND_IDS], 0, -1).astype(np.float32)
    return downsample(data / np.float32(REFLECTANCE_SCALE), valid, factor)


def probabilities(det: Any, features: Sequence[np.ndarray]) -> np.ndarray:
    """Model probabilities of same-shape working-grid features (:func:`working_features`) of
    any number of dates, stacked: one model call per :data:`MAX_BATCH_PIXELS` pixels."""
    per_call = max(1, MAX_BATCH_PIXELS // features[0][..., 0].size)
    return np.concatenate([
        det.get_cloud_probability_maps(np.stack(features[i : i + per_call]))
        for i in range(0, len(features), per_call)
    ])  # fmt: skip


def tile_mask(
    det: Any, prob: np.ndarray, share: np.ndarray, shape: tuple[int, int], factor: int
) -> tuple[np.ndarray, np.ndarray]:
    """A date's working-grid probability on the tile grid and s2cloudless's mask from it
    (averaging, threshold, dilation on the tile grid): float32 and uint8 (H, W)."""
    full = upsample(prob, share, shape, factor).astype(np.float32)
    return full, det.get_mask_from_prob(full[np.newaxis])[0].astype(np.uint8)


def detect_stack(
    images: Sequence[np.ndarray], valid: Sequence[np.ndarray], det: Any, factor: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cloud probabilities (float32) and masks (uint8), ``(N, H, W)``, of ``N`` same-shape
    (13, H, W) L1C DN images with their valid pixels, on a working grid ``factor`` times
    coarser; one model call for all dates (:func:`probabilities`)."""
    features = [working_features(im, ok, factor) for im, ok in zip(images, valid, strict=True)]
    probs = probabilities(det, [f for f, _ in features])
    shape = images[0].shape[1:]
    shares = [share for _, share in features]
    out = [tile_mask(det, p, sh, shape, factor) for p, sh in zip(probs, shares, strict=True)]
    return np.stack([p for p, _ in out]), np.stack([m for _, m in out])


def _missing(value: Any) -> bool:
    """An empty manifest cell: None, NaN or an empty string."""
    return value is None or (isinstance(value, float) and np.isnan(value)) or str(value) == ""


def read_l1c(path: str | os.PathLike[str], where: str) -> tuple[np.ndarray, dict, np.ndarray]:
    """A 13-band L1C GeoTIFF: its DN (13, H, W), profile and valid pixels (not all bands 0
    or the nodata value); another band count is an error naming ``where``."""
    image, profile = read_raster(path)
    if image.shape[0] != len(S2_L1C_BANDS):
        have = ", ".join(S2_L1C_BANDS[: image.shape[0]]) if image.shape[0] < 13 else "more"
        raise InputDataError(
            f"{where}: s2cloudless needs the {len(S2_L1C_BANDS)} L1C bands "
            f"{', '.join(S2_L1C_BANDS)} in this order; the file has {image.shape[0]} bands "
            f"({have}); missing: "
            f"{', '.join(S2_L1C_BANDS[image.shape[0] :]) or 'none, but there are extra bands'}"
        )
    nodata = (image == 0).all(axis=0)
    if profile.get("nodata") is not None:
        nodata |= (image == profile["nodata"]).all(axis=0)
    return image, profile, ~nodata


def write_date(
    paths: tuple[Path, Path], prob: np.ndarray, cloud: np.ndarray, valid: np.ndarray,
    profile: Mapping[str, Any], tags: Mapping[str, Any],
) -> None:  # fmt: skip
    """Write a date's class mask and probability (NaN on nodata) on its image's grid."""
    mask = np.where(cloud > 0, CLOUD, CLEAR).astype(np.uint8)
    mask[~valid] = MASK_NODATA
    prob = np.where(valid, prob, np.float32(np.nan))
    prof = geotiff_profile(
        crs=profile["crs"], transform=profile["transform"], width=profile["width"],
        height=profile["height"], count=1, dtype="uint8", nodata=MASK_NODATA,
    )  # fmt: skip
    write_raster(paths[0], mask, prof, tags=tags)
    write_raster(paths[1], prob, {**prof, "dtype": "float32", "nodata": np.nan}, tags=tags)


def detect_tile(
    rows: pd.DataFrame, dest: Path, det: Any, settings: Mapping[str, Any]
) -> dict[Any, tuple[Path, Path]]:
    """Masks of the dates (manifest ``rows``) of one tile: each image read and brought to
    its working grid in turn, then one model call for all dates of one grid; returns the
    mask and probability paths by row index."""
    batches: dict[tuple[tuple[int, int], int], list[tuple]] = {}
    for idx, row in rows.iterrows():
        where = f"{row['image']} (tile {row['tile']}, source {row.get('source', '?')})"
        image, profile, valid = read_l1c(row["image"], where)
        factor = tile_factor(settings["resolution"], profile, where)
        features, share = working_features(image, valid, factor)
        out = Path(dest) / "masks" / str(row["tile"])
        paths = (out / f"{row['date']}_mask.tif", out / f"{row['date']}_probability.tif")
        entry = (idx, paths, profile, valid, features, share)
        batches.setdefault((image.shape[1:], factor), []).append(entry)
    written = {}
    tags = {"detector": "s2cloudless", **{k: settings[k] for k in TAGGED_SETTINGS}}
    for (shape, factor), dates in batches.items():
        log.debug("tile %s: %d dates, working grid %s (factor %d)", rows["tile"].iloc[0],
                  len(dates), "x".join(map(str, coarse_shape(shape, factor))), factor)  # fmt: skip
        probs = probabilities(det, [features for *_, features, _ in dates])
        for (idx, paths, profile, valid, _, share), p in zip(dates, probs, strict=True):
            prob, cloud = tile_mask(det, p, share, shape, factor)
            write_date(paths, prob, cloud, valid, profile, {**tags, "working_factor": factor})
            written[idx] = paths
    return written


def masks_for_manifest(
    manifest: pd.DataFrame, dest: Path, clouds_cfg: Mapping[str, Any], threads: int | None = None
) -> pd.DataFrame:
    """Run the detector on every row without a mask; fill ``mask`` and ``probability``.

    ``clouds_cfg`` is the resolved ``clouds`` config section (its ``detector`` settings);
    the model runs on ``threads`` threads (default: :func:`default_threads`), all dates of a
    tile at once (:func:`detect_tile`).  Writes ``dest/masks/<tile>/<date>_mask.tif`` (uint8
    classes of :mod:`cloudfree.bands`) and ``<date>_probability.tif`` (float32 0..1, NaN on
    nodata) on the image's grid.
    """
    settings = clouds_cfg["detector"]
    manifest = manifest.copy()
    for col in ("mask", "probability"):
        if col not in manifest.columns:
            manifest[col] = ""
        manifest[col] = manifest[col].astype(object)
    todo = manifest[[_missing(v) for v in manifest["mask"]]]
    if todo.empty:
        return manifest
    det, tiles = make_detector(settings, threads), todo.groupby(todo["tile"].astype(str))
    for _, rows in tracked(tiles, log, f"cloud detection in {dest}: tiles", tiles.ngroups):
        for idx, (mask_path, prob_path) in detect_tile(rows, dest, det, settings).items():
            manifest.at[idx, "mask"] = str(mask_path)
            manifest.at[idx, "probability"] = str(prob_path)
    return manifest
