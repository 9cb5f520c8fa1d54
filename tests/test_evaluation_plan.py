"""Dry runs of the workflow: each synthetic region's evaluation scene runs the chain up to
inference with the region's model, never trains, and rule metrics scores it with its region."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from .workflow_run import REPO, planned_files, snakemake, write_config

DEFAULT = yaml.safe_load((REPO / "config/config.yaml").read_text())
SCENES = {"africa_inductive", "europa_inductive"}


def _plan(workdir: Path, config: dict[str, Any], *targets: str) -> list[dict[str, Any]]:
    write_config(workdir, config)
    return planned_files(snakemake(workdir, "-n", *targets))


def _regions(plan: list[dict[str, Any]], rule: str) -> list[str]:
    return sorted(job["wildcards"].get("region", job["wildcards"].get("experiment", ""))
                  for job in plan if job["rule"] == rule)  # fmt: skip


@pytest.fixture(scope="module")
def default_plan(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return _plan(tmp_path_factory.mktemp("plan"), DEFAULT)


def test_the_scenes_run_the_chain_up_to_inference(default_plan) -> None:
    every = ["africa", "africa_inductive", "europa", "europa_inductive"]
    for rule in ("download_tiles", "cloud_stats", "pack_hdf5", "infer"):
        assert _regions(default_plan, rule) == every, rule
    # the evaluation scene never trains: one model per configured region
    assert _regions(default_plan, "train") == ["africa", "europa"]
    assert {job["wildcards"]["experiment"] for job in default_plan if job["rule"] == "train"} == {
        "africa", "europa"
    }  # fmt: skip
    for job in default_plan:
        if job["rule"] == "train":  # nothing of the scene in the training data
            assert job["input"] == [f"results/hdf5/{job['wildcards']['experiment']}.h5"]
    for rule in ("metrics", "mosaic"):
        assert _regions(default_plan, rule) == ["africa", "europa"], rule
    for rule in ("score_model", "score_baselines"):  # a scene is scored in its region's
        assert _regions(default_plan, rule) == ["africa", "europa"], rule
    (summary,) = (job for job in default_plan if job["rule"] == "metrics_all")
    assert summary["input"] == [
        "results/metrics/africa_summary.csv", "results/metrics/europa_summary.csv",
        "results/metrics/africa_experiments.csv", "results/metrics/europa_experiments.csv",
    ]  # fmt: skip


def test_a_scene_is_reconstructed_by_its_regions_model(default_plan) -> None:
    infer = {job["wildcards"]["region"]: job for job in default_plan if job["rule"] == "infer"}
    scene = infer["africa_inductive"]
    assert scene["wildcards"] == {"experiment": "africa", "region": "africa_inductive"}
    assert scene["input"] == [
        "results/models/africa/model.pt", "results/hdf5/africa_inductive.h5"
    ]  # fmt: skip
    assert "results/predictions/africa/africa_inductive/eval.h5" in scene["output"]


def test_metrics_of_a_region_read_its_scene(default_plan) -> None:
    def jobs(rule: str) -> dict[str, dict[str, Any]]:
        return {job["wildcards"]["region"]: job for job in default_plan if job["rule"] == rule}

    model, baselines, metrics = jobs("score_model"), jobs("score_baselines"), jobs("metrics")
    for region in ("africa", "europa"):
        assert model[region]["input"] == [
            f"results/hdf5/{region}.h5",
            f"results/predictions/{region}/{region}/eval.h5",
            f"results/hdf5/{region}_inductive.h5",
            f"results/predictions/{region}/{region}_inductive/eval.h5",
        ]
        assert baselines[region]["input"] == [
            f"results/hdf5/{region}.h5", f"results/hdf5/{region}_inductive.h5"
        ]  # fmt: skip
        assert metrics[region]["input"] == [
            f"results/hdf5/{region}.h5",
            f"results/predictions/{region}/{region}/eval.h5",
            f"results/metrics/{region}/baselines/dates.csv",
            f"results/metrics/{region}/baselines/pooled.csv",
            f"results/metrics/{region}/models/{region}/dates.csv",
            f"results/metrics/{region}/models/{region}/pooled.csv",
        ]
        assert metrics[region]["output"][:3] == [
            f"results/metrics/{region}.csv",
            f"results/metrics/{region}_pooled.csv",
            f"results/metrics/{region}_summary.csv",
        ]


def test_no_scene_when_the_inductive_set_is_disabled(tmp_path: Path) -> None:
    config = copy.deepcopy(DEFAULT)
    config["evaluation"] = {"inductive": {"enabled": False}}
    plan = _plan(tmp_path, config)
    assert not [job for job in plan if set(job["wildcards"].values()) & SCENES]
    assert _regions(plan, "infer") == ["africa", "europa"]
    (model,) = (job for job in plan if job["wildcards"].get("region") == "africa"
                and job["rule"] == "score_model")  # fmt: skip
    assert model["input"] == [
        "results/hdf5/africa.h5",
        "results/predictions/africa/africa/eval.h5",
    ]


def test_a_shared_model_reconstructs_every_scene(tmp_path: Path) -> None:
    config = copy.deepcopy(DEFAULT)
    config["experiments"] = {"all": {"regions": ["africa", "europa"]}}
    plan = _plan(tmp_path, config)
    assert [job["wildcards"] for job in plan if job["rule"] == "train"] == [{"experiment": "all"}]
    scenes = {job["wildcards"]["region"]: job["wildcards"]["experiment"]
              for job in plan if job["rule"] == "infer"}  # fmt: skip
    assert scenes == dict.fromkeys(["africa", "africa_inductive", "europa", "europa_inductive"],
                                   "all")  # fmt: skip
