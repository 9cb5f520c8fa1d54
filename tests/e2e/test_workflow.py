"""End to end: the real `snakemake` command on a tiny two-region config in a temp dir; each
region with its evaluation scene (2 x 2 tiles, all test, its own seed and dates)."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import rasterio
import torch

from cloudfree.bands import S2_L1C_BANDS
from cloudfree.config import section
from cloudfree.metrics.table import METRIC_COLUMNS, pooled_columns

from ..workflow_run import REPO, planned_jobs, snakemake, tiny_config, write_config

pytestmark = pytest.mark.e2e
CHAIN = {"download_tiles", "cloud_stats", "pack_hdf5", "train", "infer", "mosaic", "metrics",
         "score_model", "score_baselines"}  # fmt: skip
SCORES = {"score_model", "score_baselines", "metrics"}  # a region's scoring
SCENE_CHAIN = {"download_tiles", "cloud_stats", "pack_hdf5", "infer"}  # an evaluation scene's
METHODS = ["model", *section("metrics")["baselines"]]
# the report's pages of a region's tables, made again when the tables are
REGION_TABLES = {"report_cloud_tables", "report_metrics_tables", "report_metrics_all_tables"}
CATEGORIES = ["Cloud statistics", "Metrics", "Mosaics", "Settings", "Training"]


def dry_run(workdir: Path, config: dict, *targets: str) -> list[tuple[str, dict[str, str]]]:
    path = write_config(workdir / "variant", config) if config else None
    return planned_jobs(snakemake(workdir, "-n", *targets, config=path))


def test_manifest_and_tiles(run):
    manifest = pd.read_csv(run / "results/tiles/africa.csv")
    assert manifest["tile"].nunique() == 3 and manifest["date"].nunique() == 6
    assert set(manifest["split"]) == {"train", "val", "test"}
    scene = pd.read_csv(run / "results/tiles/africa_inductive.csv")
    assert scene["tile"].nunique() == 4 and scene["date"].nunique() == 6
    assert set(scene["split"]) == {"test"} and set(scene["region"]) == {"africa_inductive"}
    assert not set(scene["date"]) & set(manifest["date"])  # none of the training dates
    assert (scene["width"] == 32).all() and (scene["crs"] == "EPSG:32737").all()
    row = manifest.iloc[0]
    with rasterio.open(run / row.image) as src:
        assert src.crs.to_epsg() == 32737
        assert src.count == 13 and src.dtypes[0] == "uint16" and src.nodata == 0
        assert src.bounds == pytest.approx((row.left, row.bottom, row.right, row.top))


def test_cloud_statistics(run):
    cov = pd.read_csv(run / "results/cloudstats/europa.csv")
    assert len(cov) == 18
    assert cov["cloud_fraction"].between(0, 1).all()
    # europa is configured cloudier than africa
    assert (
        cov["cloud_fraction"].mean()
        > pd.read_csv(run / "results/cloudstats/africa.csv")["cloud_fraction"].mean()
    )
    runs = pd.read_csv(run / "results/cloudstats/europa_runs.csv")
    assert runs["count"].sum() > 0


def test_packed_file_keeps_georeference(run):
    with h5py.File(run / "results/hdf5/africa.h5") as h5:
        assert h5.attrs["region"] == "africa"
        tiles = h5["tiles"]
        assert len(tiles) == 3
        first = tiles[sorted(tiles)[0]]
        assert first["s2"].shape == (6, 13, 32, 32)
        assert "32737" in first.attrs["crs"] or "UTM zone 37S" in first.attrs["crs"]
    with h5py.File(run / "results/hdf5/africa_inductive.h5") as h5:
        assert h5.attrs["region"] == "africa_inductive"
        assert len(h5["tiles"]) == 4
        assert {h5[f"tiles/{t}"].attrs["split"] for t in h5["tiles"]} == {"test"}


def test_model_file_is_complete_and_safe_to_load(run):
    model = torch.load(run / "results/models/africa/model.pt", weights_only=True)
    assert model["model"]["name"] == "utilise"
    assert len(model["norm"]["mean"]) == 13
    history = pd.read_csv(run / "results/models/africa/history.csv")
    assert len(history) == 30


def test_predictions_on_input_grid(run):
    manifest = pd.read_csv(run / "results/tiles/europa.csv")
    row = manifest.iloc[-1]
    pred = run / f"results/predictions/europa/europa/tiles/{row.tile}/{row.date}.tif"
    with rasterio.open(run / row.image) as src, rasterio.open(pred) as out:
        assert out.crs == src.crs and out.transform == src.transform
        assert out.shape == src.shape and out.count == 13 and out.nodata == 0
        assert out.tags()["DATE"] == row.date
        data = out.read()
        assert data.min() >= 1 and np.median(data) < 6000
    quality = pred.with_name(f"{row.date}_quality.tif")
    with rasterio.open(quality) as q:
        assert set(np.unique(q.read(1))) <= {0, 1, 2, 3}
    # the evaluation scene, reconstructed by the region's model
    scene = pd.read_csv(run / "results/tiles/europa_inductive.csv")
    with h5py.File(run / "results/predictions/europa/europa_inductive/eval.h5") as ev:
        assert sorted(ev["tiles"]) == sorted(scene["tile"].unique())
    assert not (run / "results/models/europa_inductive").exists()


def test_mosaics_cover_the_region(run):
    manifest = pd.read_csv(run / "results/tiles/africa.csv")
    date = manifest["date"].iloc[0]
    folder = run / "results/mosaics/africa/africa"
    with rasterio.open(folder / f"{date}.tif") as src:
        assert src.crs.to_epsg() == 32737
        assert src.bounds.left == pytest.approx(manifest["left"].min())
        assert src.bounds.right == pytest.approx(manifest["right"].max())
        assert src.count == 13
    with rasterio.open(folder / f"{date}_count.tif") as cnt:
        count = cnt.read(1)
        assert count.min() >= 1 and count.max() == 2  # overlaps of neighbouring tiles


def _test_tiles(run: Path, region: str) -> int:
    manifest = pd.read_csv(run / f"results/tiles/{region}.csv")
    return manifest.loc[manifest["split"] == "test", "tile"].nunique()


@pytest.mark.parametrize("region", ["africa", "europa"])
def test_metrics_table(run, region):
    df = pd.read_csv(run / f"results/metrics/{region}.csv", dtype={"tile": str, "date": str})
    assert list(df.columns[:4]) == ["region", "source", "experiment", "run"]
    assert set(METRIC_COLUMNS) <= set(df.columns)
    assert list(pd.unique(df["method"])) == METHODS
    assert (df["split"] == "test").all() and set(df["region"]) == {region}
    assert list(pd.unique(df["evaluation"])) == ["transductive", "inductive"]
    tiles = df.groupby("evaluation")["tile"].nunique().to_dict()
    n_test = _test_tiles(run, region)
    assert tiles == {"transductive": n_test, "inductive": 4}
    assert len(df) == (n_test + 4) * 6 * len(METHODS)
    scene_dates = set(pd.read_csv(run / f"results/tiles/{region}_inductive.csv")["date"])
    assert set(df.loc[df["evaluation"] == "inductive", "date"]) == scene_dates
    scored = df[df["n_masked"] > 0]
    assert set(scored["evaluation"]) == {"transductive", "inductive"}
    assert scored["mae_masked"].between(0, 1).all()
    assert scored["psnr_masked"].gt(5).all()
    assert df.loc[df["n_masked"] == 0, "mae_masked"].isna().all()


@pytest.mark.parametrize("region", ["africa", "europa"])
def test_pooled_table(run, region):
    pooled = pd.read_csv(run / f"results/metrics/{region}_pooled.csv", dtype={"tile": str})
    dates = pd.read_csv(run / f"results/metrics/{region}.csv", dtype={"tile": str})
    assert list(pooled.columns) == [
        "region",
        "source",
        "experiment",
        "run",
        *pooled_columns(S2_L1C_BANDS),
    ]
    n_test = _test_tiles(run, region)
    assert len(pooled) == (n_test + 4) * len(METHODS)
    assert pooled.groupby("evaluation", sort=False)["tile"].nunique().to_dict() == {
        "transductive": n_test, "inductive": 4
    }  # fmt: skip
    assert (pooled["dates"] == 6).all()
    # every masked pixel of a tile's dates, once
    keys = ["evaluation", "tile", "method"]
    totals = dates.groupby(keys)["n_masked"].sum()
    assert (pooled.set_index(keys)["n_masked"] == totals.loc[pooled.set_index(keys).index]).all()


def test_summaries_per_evaluation_set(run):
    summary = pd.read_csv(run / "results/metrics/europa_summary.csv")
    assert list(zip(summary["evaluation"], summary["method"], strict=True)) == [
        (e, m) for e in ("transductive", "inductive") for m in METHODS
    ]
    n_test = _test_tiles(run, "europa")
    by = summary.set_index(["evaluation", "method"])
    assert (by.loc["transductive", "tiles"] == n_test).all()
    assert (by.loc["inductive", "tiles"] == 4).all()
    # fewer than 10 tiles in either set: no interval, and the note says why
    assert summary["mae_masked_ci_low"].isna().all() and summary["mae_masked_ci_high"].isna().all()
    assert (by.loc["inductive", "note"] == "4 scored tiles: intervals need at least 10").all()
    assert (
        np.isfinite(summary["mae_masked"]).all() and np.isfinite(summary["mae_masked_date"]).all()
    )
    assert (by.xs("linear", level="method")["mae_masked_diff_linear"] == 0).all()
    for evaluation in ("transductive", "inductive"):
        rows = by.loc[evaluation]
        best = rows.loc[METHODS[1:], "mae_masked"].idxmin()
        assert (rows["best_baseline"] == best).all()
        assert rows.loc[best, "mae_masked_diff_best"] == 0
    both = pd.read_csv(run / "results/metrics/all_regions.csv")
    assert sorted(both["region"].unique()) == ["africa", "europa"]
    assert len(both) == 2 * 2 * len(METHODS)


def test_console_has_one_summary_line_per_job(run):
    lines = [
        line for line in (run / "console.txt").read_text().splitlines()
        if line.startswith("cloudfree: ")
    ]  # fmt: skip
    assert {line.split()[1] for line in lines} >= CHAIN
    train = next(line for line in lines if line.startswith("cloudfree: train experiment="))
    assert " done in " in train and "(training steps: 30 of 30 (100 %)" in train
    assert train.endswith(".log")


def test_complete_run_has_nothing_to_do(run):
    assert dry_run(run, {}) == []


def test_training_value_reruns_training_and_below(run):
    config = tiny_config(lr=0.0005)
    jobs = dry_run(run, config)
    # the baselines' scores stay: they do not depend on the model
    assert {rule for rule, _ in jobs} == {
        "train", "infer", "mosaic", "score_model", "metrics", "metrics_all",
        "settings_experiment", "report_metrics_tables", "report_metrics_all_tables",
    }  # fmt: skip
    # the scenes' inference too: they are reconstructed by the retrained models
    assert sorted(wc["region"] for rule, wc in jobs if rule == "infer") == [
        "africa", "africa_inductive", "europa", "europa_inductive"
    ]  # fmt: skip
    assert sorted(wc["experiment"] for rule, wc in jobs if rule == "train") == ["africa", "europa"]
    assert len(jobs) == 2 + 4 + 2 + 2 + 2 + 1 + 2 + 2 + 1


def test_scene_settings_rerun_the_scenes_and_metrics_only(run):
    config = tiny_config()
    config["evaluation"]["inductive"]["seed_offset"] = 77
    jobs = dry_run(run, config)
    scenes = {"africa_inductive", "europa_inductive"}
    assert {rule for rule, _ in jobs} == SCENE_CHAIN | SCORES | {"metrics_all"} | {
        "settings_workflow", "report_cloud_tables", "report_metrics_tables",
        "report_metrics_all_tables",
    }  # fmt: skip
    for rule in SCENE_CHAIN:
        assert {wc["region"] for r, wc in jobs if r == rule} == scenes, rule
    for rule in SCORES:  # a scene is scored in its region's files
        assert {wc["region"] for r, wc in jobs if r == rule} == {"africa", "europa"}, rule


def test_mosaic_rule_reruns_mosaic_only(run):
    config = tiny_config()
    config["mosaic"] = {"rule": "median"}
    assert {rule for rule, _ in dry_run(run, config)} == {"mosaic", "settings_workflow"}


def test_execution_settings_rerun_nothing(run):
    """Workers, checkpoint interval, TensorBoard and inference batch size change how jobs
    run, not what they make."""
    config = tiny_config(num_workers=1, checkpoint_every=7, tensorboard=False)
    config["infer"] = {"batch_size": 16}
    assert dry_run(run, config) == []


def test_detector_settings_rerun_nothing_for_sources_with_masks(run):
    """The synthetic source comes with masks: the detector does not apply to it."""
    config = tiny_config()
    config["clouds"] = {"detector": {"threshold": 0.6, "average_over": 2}}
    assert dry_run(run, config) == []


def test_seed_of_one_region_reruns_that_region_only(run):
    config = tiny_config()
    config["regions"]["europa"]["synthetic"]["seed"] = 99
    jobs = dry_run(run, config)
    assert {rule for rule, _ in jobs} == CHAIN | {"metrics_all", "settings_region"} | REGION_TABLES
    assert all(not v.startswith("africa") for _, wc in jobs for v in wc.values())
    # its evaluation scene derives from the region's settings: it is made again too
    for rule in SCENE_CHAIN:
        assert {wc["region"] for r, wc in jobs if r == rule} == {"europa", "europa_inductive"}


def test_one_region_target_plans_no_other_region(tmp_path):
    write_config(tmp_path, tiny_config())
    jobs = dry_run(tmp_path, {}, "results/metrics/africa.csv")
    assert {rule for rule, _ in jobs} == CHAIN - {"mosaic"}
    assert all(not v.startswith("europa") for _, wc in jobs for v in wc.values())
    assert {wc["region"] for rule, wc in jobs if rule == "infer"} == {"africa", "africa_inductive"}
    assert [wc for rule, wc in jobs if rule == "train"] == [{"experiment": "africa"}]


@pytest.mark.parametrize(
    ("section", "value", "named"),
    [
        ("train", {"lrr": 0.1}, "lrr"),
        ("train", {"lr": "fast"}, "lr"),
        ("mosaic", {"rule": "average"}, "average"),
        ("flavour", {}, "flavour"),
        ("evaluation", {"inductive": {"tiles": 3}}, "tiles"),
        ("evaluation", {"holdout_period": {"start": "2021-06-01"}}, "end"),
    ],
)
def test_bad_config_fails_before_any_job(tmp_path, section, value, named):
    config = copy.deepcopy(tiny_config())
    config[section] = value
    write_config(tmp_path, config)
    proc = snakemake(tmp_path, "-c", "1", check=False)
    assert proc.returncode != 0
    assert named in proc.stderr + proc.stdout
    assert not (tmp_path / "results").exists()


def _embedded(html: str, name: str):
    """The JSON the report embeds as ``var <name> = ...;``."""
    found = re.search(rf'<script id="{name}">\s*var {name} = (.*?);\s*</script>', html, re.S)
    assert found, name
    return json.loads(found.group(1))


def test_report_gathers_figures_and_tables(run):
    snakemake(run, "--report", str(run / "report.html"))
    html = (run / "report.html").read_text()
    for name in (
        "africa_coverage.png", "history.png", "europa_mae.png", "africa_summary.csv",
        "africa_difficulty.png", "europa_examples.png", "africa_quicklook.png", "all_regions.csv",
        "africa_summary.html", "all_regions.html", "region_africa.html", "experiment_europa.html",
        "workflow.html",
    ):  # fmt: skip
        assert name in html
    results, categories = _embedded(html, "results"), _embedded(html, "categories")
    assert sorted(categories) == CATEGORIES
    for category, subcategories in categories.items():
        for paths in subcategories.values():
            labels = [tuple(sorted(results[p]["labels"].items())) for p in paths]
            assert len(set(labels)) == len(labels), (category, labels)  # unique per entry
            # shown in place: no table is only a download
            assert {results[p]["mime_type"] for p in paths} <= {"image/png", "text/html"}
    settings = [results[p]["labels"]["settings"] for p in categories["Settings"]["Other"]]
    assert sorted(settings) == [
        "experiment africa", "experiment europa", "region africa", "region europa", "workflow"
    ]  # fmt: skip
    # and no label the report would make a toggle it cannot show
    check = [sys.executable, str(REPO / "docs/check_report.py"), str(run / "report.html")]
    proc = subprocess.run([*check, "--no-browser"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(
    not Path("/usr/bin/chromium").exists() or importlib.util.find_spec("playwright") is None,
    reason="needs Debian's chromium and Playwright (pip install playwright)",
)
def test_report_clicks_through_in_chromium(run, tmp_path):
    """Every category, entry and toggle of the report clicked: no console or page error."""
    report = run / "report.html"
    if not report.exists():
        snakemake(run, "--report", str(report))
    check = [sys.executable, str(REPO / "docs/check_report.py"), str(report)]
    proc = subprocess.run([*check, "--screenshots", str(tmp_path)], capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.stem for p in tmp_path.glob("*.png")) == [
        "cloud_statistics", "metrics", "mosaics", "settings", "training"
    ]  # fmt: skip


def _readme_block(after: str) -> list[str]:
    readme = (REPO / "README.md").read_text()
    block = readme.split(after, 1)[1].split("```\n", 2)[1]
    return [c.strip() for c in block.strip().split(",")]


def test_metric_columns_are_the_documented_ones(run):
    table = pd.read_csv(run / "results/metrics/africa.csv", nrows=1)
    assert list(table.columns) == _readme_block("`results/metrics/<region>.csv`, one row per")
    pooled = pd.read_csv(run / "results/metrics/africa_pooled.csv", nrows=1)
    assert list(pooled.columns) == _readme_block("`results/metrics/<region>_pooled.csv`, one row")
    summary = pd.read_csv(run / "results/metrics/africa_summary.csv", nrows=1)
    assert list(summary.columns) == _readme_block("`results/metrics/<region>_summary.csv`, one row")
