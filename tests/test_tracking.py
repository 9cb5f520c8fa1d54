"""Tests of cloudfree.train.tracking: a training run logged to a local MLflow file store and
read back, the message when MLflow is missing, and the tracking hook of train_outputs."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import cloudfree.train.launch as launch_module
from cloudfree.errors import CloudfreeError, ConfigError
from cloudfree.train.history import HISTORY_COLUMNS
from cloudfree.train.tracking import (
    MAX_PARAM_LENGTH,
    flatten_params,
    log_training_run,
    tracking_uri,
)

mlflow = pytest.importorskip("mlflow")

PARAMS: dict[str, Any] = {
    "steps": 3,
    "lr": 0.01,
    "model": {"name": "utilise", "widths": [4, 8]},
    "sampling": {"seq_len": 4},
}
SUMMARY: dict[str, Any] = {
    "steps": 3, "best_step": 2, "val_mae_masked": 0.05, "stopped_early": False,
    "final_train_loss": math.nan, "device": "cpu",
}  # fmt: skip


def _history() -> pd.DataFrame:
    """Three steps, validated at steps 2 and 3 (the CSV leaves the other rows empty)."""
    rows = [
        [1, 0.01, 0.9, 1.5, math.nan, math.nan, 0.1],
        [2, 0.01, 0.7, 1.2, 0.06, 20.0, 0.2],
        [3, 0.005, 0.6, 1.1, 0.05, 21.0, 0.3],
    ]
    return pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A local MLflow file store; the opt-in MLflow >= 3.18 needs for it is unset (the
    library gives it for a file: URI), and restored afterwards."""
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "unset")  # recorded, so undone at teardown
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE")
    return (tmp_path / "mlruns").as_uri()


def test_a_run_is_logged_and_read_back(store: str) -> None:
    run_id = log_training_run(
        store, "exp1/seed0", PARAMS, _history(), SUMMARY, tags={"model_file": "m.pt"}
    )
    client = mlflow.MlflowClient(tracking_uri=store)
    run = client.get_run(run_id)
    assert run.info.run_name == "exp1/seed0" and run.info.status == "FINISHED"
    assert run.data.tags["mlflow.runName"] == "exp1/seed0"
    assert run.data.tags["model_file"] == "m.pt"
    assert client.get_experiment(run.info.experiment_id).name == "cloudfree"
    assert run.data.params == {
        "steps": "3", "lr": "0.01", "model.name": "utilise", "model.widths": "[4, 8]",
        "sampling.seq_len": "4",
    }  # fmt: skip
    series = client.get_metric_history(run_id, "val_mae_masked")
    assert sorted((m.step, m.value) for m in series) == [(2, 0.06), (3, 0.05)]
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == [1, 2, 3]
    assert "step" not in run.data.metrics
    final = {k: v for k, v in run.data.metrics.items() if k.startswith("summary.")}
    assert final == {
        "summary.steps": 3.0, "summary.best_step": 2.0, "summary.val_mae_masked": 0.05,
        "summary.stopped_early": 0.0,
    }  # fmt: skip


def test_a_second_run_goes_to_the_same_experiment(store: str) -> None:
    first = log_training_run(store, "a", PARAMS, _history(), SUMMARY, experiment="e")
    second = log_training_run(store, "b", PARAMS, _history(), SUMMARY, experiment="e")
    client = mlflow.MlflowClient(tracking_uri=store)
    assert client.get_run(first).info.experiment_id == client.get_run(second).info.experiment_id


def test_a_bare_path_becomes_a_file_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.chdir(tmp_path)
    assert tracking_uri("mlruns") == (tmp_path / "mlruns").as_uri()
    run_id = log_training_run("mlruns", "r", PARAMS, _history(), SUMMARY)
    assert mlflow.MlflowClient(tracking_uri=tracking_uri("mlruns")).get_run(run_id)


def test_bad_uris_and_run_names_are_refused(store: str) -> None:
    for bad in ("s3://bucket/mlruns", "", None):
        with pytest.raises(ConfigError, match=r"tracking\.mlflow"):
            tracking_uri(bad)  # type: ignore[arg-type]
    assert tracking_uri("http://host:5000") == "http://host:5000"
    with pytest.raises(ConfigError, match="run name"):
        log_training_run(store, "", PARAMS, _history(), SUMMARY)


def test_long_param_values_are_cut_with_a_note() -> None:
    flat = flatten_params({"a": {"b": "x" * 7000}, "empty": {}})
    assert len(flat["a.b"]) == MAX_PARAM_LENGTH and flat["a.b"].endswith("[cut: 7000 characters]")
    assert flat["empty"] == "{}"


def test_a_failed_run_is_marked_failed(store: str) -> None:
    with pytest.raises(CloudfreeError, match="no step column"):
        log_training_run(store, "broken", PARAMS, _history().drop(columns="step"), SUMMARY)
    client = mlflow.MlflowClient(tracking_uri=store)
    (run,) = client.search_runs([client.get_experiment_by_name("cloudfree").experiment_id])
    assert run.info.run_name == "broken" and run.info.status == "FAILED"


def test_missing_mlflow_names_the_extra(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(CloudfreeError, match=r"pip install 'cloudfree\[mlflow\]'"):
        log_training_run(store, "r", PARAMS, _history(), SUMMARY)


def _fake_training(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """train_outputs without training: launch writes the history, release is recorded."""
    released: list[str] = []

    def launch(packed, model_out, history_out, params, **keywords):
        Path(model_out).write_bytes(b"model")
        _history().to_csv(history_out, index=False)
        return SUMMARY

    monkeypatch.setattr(launch_module, "launch", launch)
    monkeypatch.setattr(launch_module, "training_curve", lambda history, out, run="": None)
    monkeypatch.setattr(launch_module, "release", lambda model: released.append(str(model)))
    return released


def test_train_outputs_logs_the_run(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    released = _fake_training(monkeypatch)
    model = tmp_path / "models" / "exp1" / "model.pt"
    model.parent.mkdir(parents=True)
    summary = launch_module.train_outputs(
        [], model, tmp_path / "h.csv", tmp_path / "c.png", PARAMS, tracking=store
    )
    assert summary == SUMMARY and released == [str(model)]
    client = mlflow.MlflowClient(tracking_uri=store)
    (run,) = client.search_runs([client.get_experiment_by_name("cloudfree").experiment_id])
    assert run.info.run_name == "exp1" and run.data.tags["model_file"] == str(model)


def test_a_tracking_failure_keeps_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    released = _fake_training(monkeypatch)
    model = tmp_path / "model.pt"
    launch_module.train_outputs(
        [], model, tmp_path / "h.csv", tmp_path / "c.png", PARAMS, tracking="s3://nowhere"
    )
    assert model.is_file() and released == [str(model)]
    assert "MLflow tracking to s3://nowhere failed" in caplog.text
