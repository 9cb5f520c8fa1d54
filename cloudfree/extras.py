"""Optional parts of the library: which pip extra installs what, and the error that says so.

The core (tiles from the synthetic and folder sources, cloud statistics, packing, mosaics,
the workflow's config checks) needs only the packages of ``[project] dependencies``.  Every
other package belongs to one extra of :data:`EXTRAS` (``pyproject.toml`` lists exactly
these), and a module that needs one imports it at module level like this::

    try:
        import torch
    except ImportError as exc:
        raise missing_extra("torch", "train") from exc

or, where the import is heavy and only some calls need it, at its use with
:func:`import_optional`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from cloudfree.errors import CloudfreeError

# extra -> the import names of the packages it installs
EXTRAS: dict[str, tuple[str, ...]] = {
    # STAC API sources (regions.<name>.source: stac)
    "stac": ("pystac_client",),
    # cloud masks where a source has none: s2cloudless's LightGBM model, compiled by lleaves
    "detector": ("s2cloudless", "lightgbm", "lleaves", "llvmlite"),
    # the model: training, inference, the scores of the model and of the baselines
    "train": ("torch", "tensorboard"),
    # what `snakemake --report` needs beside Snakemake
    "report": ("pygments",),
    # the Slurm profile (profiles/slurm)
    "slurm": ("snakemake_executor_plugin_slurm",),
    # experiment tracking of the training runs (config key tracking.mlflow)
    "mlflow": ("mlflow",),
    # `cloudfree export` and prediction with an ONNX model file
    "export": ("onnx", "onnxruntime", "onnxscript"),
}

# import name -> the distribution pip installs it from, where the two differ
DISTRIBUTIONS: dict[str, str] = {
    "pystac_client": "pystac-client",
    "snakemake_executor_plugin_slurm": "snakemake-executor-plugin-slurm",
    "mlflow": "mlflow-skinny",
}


class MissingExtraError(CloudfreeError, ImportError):
    """An optional package is not installed; the message names the extra that brings it."""


def extra_of(package: str) -> str:
    """The extra that installs ``package`` (an import name, or a dotted module in it)."""
    top = package.split(".")[0]
    for extra, packages in EXTRAS.items():
        if top in packages:
            return extra
    raise KeyError(f"{top} belongs to no extra of cloudfree.extras.EXTRAS")


def missing_extra(package: str, extra: str) -> MissingExtraError:
    """The error to raise when ``package`` (an import name) of the ``extra`` is missing."""
    return MissingExtraError(
        f"{package} is not installed: this part of cloudfree needs the {extra!r} extra: "
        f"pip install 'cloudfree[{extra}]' (or -e '.[{extra}]' in a checkout)",
        name=package,
    )


def import_optional(module: str, extra: str) -> ModuleType:
    """``module`` (dotted) of a package of ``extra``, imported now; MissingExtraError naming
    the extra when its package is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_extra(module.split(".")[0], extra) from exc
