"""An ablation through the real snakemake command: experiments over one region that differ
in one training setting, one of them with two seeds, tracked with MLflow in a local file
store; then a change of one experiment's override plans that experiment's jobs only."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch

from ..workflow_run import planned_jobs, snakemake, tiny_config, write_config

pytestmark = pytest.mark.e2e

SCORES = "results/metrics/africa/models/{}/pooled.csv"


def ablation(tmp_path: Path, lr: float | None = None) -> dict:
    config = tiny_config(steps=20)
    del config["regions"]["europa"]
    short = {"sampling": {"seq_len": 4}} | ({"lr": lr} if lr is not None else {})
    config["experiments"] = {
        "full": {"regions": ["africa"]},
        "short": {"regions": ["africa"], "train": short},
        "seeded": {"regions": ["africa"], "seeds": [0, 1]},
    }
    config["tracking"] = {"mlflow": (tmp_path / "mlruns").as_uri()}
    return config


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ablation")
    write_config(root, ablation(root))
    snakemake(root, "-c2")
    return root


def test_each_model_file_records_its_own_settings(ran: Path) -> None:
    def sampling(run: str) -> dict:
        blob = torch.load(ran / f"results/models/{run}/model.pt", weights_only=True)
        return blob["params"]["sampling"], blob["params"]["seed"]

    assert sampling("full")[0]["seq_len"] is None and sampling("full")[1] == 0
    assert sampling("short")[0]["seq_len"] == 4
    assert {k: v for k, v in sampling("short")[0].items() if k != "seq_len"} == {
        k: v for k, v in sampling("full")[0].items() if k != "seq_len"
    }
    assert sampling("seeded/seed1")[1] == 1 and sampling("seeded/seed0")[1] == 0


def test_every_experiment_is_scored_on_the_same_pixels(ran: Path) -> None:
    keys = ["evaluation", "tile", "n_masked"]
    scored = {
        run: pd.read_csv(ran / SCORES.format(run), dtype={"tile": str})
        for run in ("full", "short", "seeded/seed0", "seeded/seed1")
    }
    pixels = {run: df[keys].sort_values(keys).to_numpy().tolist() for run, df in scored.items()}
    assert pixels["full"] and all(p == pixels["full"] for p in pixels.values())
    assert scored["full"]["n_masked"].sum() > 0
    # different models, different errors on those pixels
    assert not scored["full"]["mae_masked"].equals(scored["short"]["mae_masked"])


def test_the_comparison_table_has_a_row_per_experiment_and_baseline(ran: Path) -> None:
    table = pd.read_csv(ran / "results/metrics/africa_experiments.csv", keep_default_na=False)
    inductive = table[table["evaluation"] == "inductive"]
    models = inductive[inductive["kind"] == "model"]
    assert list(models["experiment"]) == ["full", "short", "seeded"]  # reference first
    assert list(models["seeds"]) == [1, 1, 2]
    assert models["reference"].astype(str).tolist() == ["True", "False", "False"]
    assert float(models["mae_masked_diff_reference"].iloc[0]) == 0.0
    assert (inductive["n_masked"] == inductive["n_masked"].iloc[0]).all()
    assert len(inductive[inductive["kind"] == "baseline"]) == 6  # metrics.baselines
    # the per-date table holds every run, the summary one block per run
    summary = pd.read_csv(ran / "results/metrics/africa_summary.csv")
    assert sorted(pd.unique(summary["run"])) == ["full", "seeded/seed0", "seeded/seed1", "short"]
    assert (ran / "results/metrics/africa_experiments.png").stat().st_size > 0
    # mosaics of the reference only
    assert sorted(p.name for p in (ran / "results/mosaics").iterdir()) == ["full"]


def test_each_run_is_tracked_in_mlflow(ran: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = mlflow.MlflowClient(tracking_uri=(ran / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("cloudfree")
    found = client.search_runs([experiment.experiment_id])
    names = sorted(r.info.run_name for r in found)
    assert names == ["full", "seeded/seed0", "seeded/seed1", "short"]
    short = next(r for r in found if r.info.run_name == "short")
    assert short.data.params["sampling.seq_len"] == "4"
    assert short.info.status == "FINISHED"
    assert len(client.get_metric_history(short.info.run_id, "val_mae_masked")) == 2


def test_changing_one_experiment_reruns_that_experiment_only(ran: Path) -> None:
    write_config(ran, ablation(ran, lr=0.001))
    jobs = planned_jobs(snakemake(ran, "-n", "-c2"))
    assert sorted(rule for rule, _ in jobs) == [
        "infer", "infer", "metrics", "report_metrics_tables", "score_model",
        "settings_experiment", "train",
    ]  # fmt: skip
    assert {wc.get("experiment") for rule, wc in jobs
            if rule not in ("metrics", "report_metrics_tables")} == {"short"}  # fmt: skip
