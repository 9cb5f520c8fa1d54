"""Optional MLflow experiment tracking of a finished training run.

:func:`log_training_run` records one run in an MLflow tracking store: the resolved train
section as params (dotted keys), every numeric column of the history CSV as a metric series
over its ``step`` column, and the numeric entries of the training summary as
``summary.<name>`` metrics (prefixed so that, e.g., the best ``val_mae_masked`` does not add
a point to the ``val_mae_masked`` series).  MLflow (``pip install 'cloudfree[mlflow]'``) is
imported only when a run is logged; a private :class:`mlflow.MlflowClient` per call keeps
MLflow's global state (active run, tracking URI) untouched.

MLflow >= 3.18 refuses its file store (``file:`` URIs, bare paths) unless the environment
sets ``MLFLOW_ALLOW_FILE_STORE=true``: a ``file:`` URI in ``tracking.mlflow`` is the
user's choice of that store, so the training job's process sets it (when unset) for such a
URI.  ``sqlite:`` needs the full ``mlflow`` package (alembic), not ``mlflow-skinny``.  A
tracking server (``http(s):``) needs neither.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pandas as pd

from cloudfree.errors import CloudfreeError, ConfigError
from cloudfree.extras import missing_extra

log = logging.getLogger("cloudfree.train")

SCHEMES = ("file", "http", "https", "sqlite", "databricks")
MISSING = "tracking.mlflow is set but MLflow is not installed: pip install 'cloudfree[mlflow]'"
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
BATCH = 100  # log_batch takes at most 1000 metrics, 100 params and 100 tags per call


def tracking_uri(uri: str) -> str:
    """``uri`` checked: a URI with a known scheme as it is, a bare path as an absolute
    ``file:`` URI.  Raises ConfigError on anything else (no MLflow needed)."""
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(f"tracking.mlflow: expected a URI or a path, got {uri!r}")
    scheme = urlparse(uri).scheme
    if len(scheme) <= 1:  # no scheme, or a Windows drive letter
        return Path(uri).expanduser().resolve().as_uri()
    if scheme not in SCHEMES:
        raise ConfigError(
            f"tracking.mlflow: unknown scheme {scheme!r} in {uri!r} "
            f"(expected a path or one of {', '.join(SCHEMES)})"
        )
    return uri


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings as one level of dotted keys; lists as JSON, other values as ``str``,
    each cut to MLflow's :data:`MAX_PARAM_LENGTH` characters with a note saying so."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, f"{name}."))
            continue
        if isinstance(value, Mapping | list | tuple):
            text = json.dumps(value, default=str)
        else:
            text = str(value)
        if len(text) > MAX_PARAM_LENGTH:
            note = f"... [cut: {len(text)} characters]"
            log.warning("MLflow param %s: %d characters, cut to %d", name, len(text),
                        MAX_PARAM_LENGTH)  # fmt: skip
            text = text[: MAX_PARAM_LENGTH - len(note)] + note
        flat[name] = text
    return flat


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None for non-numbers, NaN and infinities."""
    if not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def history_metrics(history: pd.DataFrame) -> list[tuple[str, float, int]]:
    """(name, value, step) of every finite value of every numeric column but ``step``."""
    if "step" not in history.columns:
        raise CloudfreeError(f"the training history has no step column: {list(history)}")
    out = []
    steps = pd.to_numeric(history["step"], errors="coerce")
    for column in history.columns:
        if column == "step" or not pd.api.types.is_numeric_dtype(history[column]):
            continue
        for step, value in zip(steps, history[column], strict=True):
            number = _number(value)
            if number is not None and not pd.isna(step):
                out.append((str(column), number, int(step)))
    return out


def summary_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """``summary.<name>``: every finite number (bools as 0/1) of the training summary."""
    numbers_only = {k: _number(v) for k, v in summary.items()}
    return {f"summary.{k}": v for k, v in numbers_only.items() if v is not None}


def _chunks(items: Sequence[Any], size: int = BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def log_training_run(
    uri: str,
    run_name: str,
    params: Mapping[str, Any],
    history: pd.DataFrame,
    summary: Mapping[str, Any],
    *,
    experiment: str = "cloudfree",
    tags: Mapping[str, str] | None = None,
) -> str:
    """Log one training run to the MLflow tracking store at ``uri`` (a URI or a bare path,
    :func:`tracking_uri`) in the experiment ``experiment`` (created if missing); returns the
    MLflow run id.

    The run ends FINISHED, or FAILED when logging fails (the error is raised again).  Raises
    ConfigError for a bad ``uri`` or ``run_name``, CloudfreeError when MLflow is not
    installed or the store cannot be opened.
    """
    uri = tracking_uri(uri)
    if uri.startswith("file:"):  # the configured store is a file store: MLflow's opt-in
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    if not isinstance(run_name, str) or not run_name:
        raise ConfigError(f"MLflow run name: expected a non-empty string, got {run_name!r}")
    try:
        import mlflow
        from mlflow.entities import Metric, Param
        from mlflow.exceptions import MlflowException
    except ImportError as exc:
        raise missing_extra("mlflow", "mlflow") from exc
    try:
        client = mlflow.MlflowClient(tracking_uri=uri)
        experiment_id = _experiment_id(client, experiment, MlflowException)
    except (MlflowException, ImportError, OSError) as exc:
        raise CloudfreeError(f"cannot open the MLflow tracking store {uri}: {exc}") from exc
    run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags or {}))
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        flat = [Param(k, v) for k, v in flatten_params(params).items()]
        series = history_metrics(history)
        metrics = [Metric(k, v, now, s) for k, v, s in series]
        last = max((s for _, _, s in series), default=0)
        metrics += [Metric(k, v, now, last) for k, v in summary_metrics(summary).items()]
        for chunk in _chunks(flat):
            client.log_batch(run_id, params=chunk)
        for chunk in _chunks(metrics, 10 * BATCH):
            client.log_batch(run_id, metrics=chunk)
    except BaseException:
        try:
            client.set_terminated(run_id, "FAILED")
        except Exception as exc:  # the first error is the one to report
            log.warning("could not mark MLflow run %s FAILED: %s", run_id, exc)
        raise
    client.set_terminated(run_id, "FINISHED")
    log.info("logged MLflow run %s (%s) to %s", run_id, run_name, uri)
    return run_id


def _experiment_id(client: Any, name: str, mlflow_error: type[Exception]) -> str:
    """The id of the experiment ``name``, created if missing (by this or a parallel job)."""
    found = client.get_experiment_by_name(name)
    if found is not None and found.lifecycle_stage == "deleted":
        raise CloudfreeError(f"the MLflow experiment {name!r} is deleted: restore it first")
    if found is not None:
        return str(found.experiment_id)
    try:
        return str(client.create_experiment(name))
    except mlflow_error:  # created meanwhile by another training job
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return str(found.experiment_id)
