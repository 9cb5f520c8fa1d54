"""End to end: the cloud statistics and date selection of a region from the real workflow."""

from __future__ import annotations

import pandas as pd
import pytest

from cloudfree.clouds.selection import COLUMNS, read_selection

from ..workflow_run import REPO, snakemake, tiny_config, write_config

pytestmark = pytest.mark.e2e
OUTPUTS = ("", "_runs", "_tiles", "_summary", "_dates")
FIGURES = ("_coverage", "_runs", "_clear_dates")


def test_cloud_statistics_of_a_region(tmp_path):
    config = tiny_config()
    config["clouds"] = {"selection": {"rule": "threshold", "mask_only_max": 0.3}}
    write_config(tmp_path, config)
    targets = [f"results/cloudstats/europa{s}.csv" for s in OUTPUTS]
    targets += [f"results/cloudstats/europa{s}.png" for s in FIGURES]
    snakemake(tmp_path, "-c", "2", *targets)
    for target in targets:
        assert (tmp_path / target).stat().st_size > 0, target
    manifest = pd.read_csv(tmp_path / "results/tiles/europa.csv")
    coverage = pd.read_csv(tmp_path / "results/cloudstats/europa.csv")
    assert len(coverage) == len(manifest)
    selection = read_selection(tmp_path / "results/cloudstats/europa_dates.csv")
    assert tuple(selection.columns[: len(COLUMNS)]) == COLUMNS
    assert len(selection) == len(manifest)
    # the configured rule: clear exactly when cloud + shadow cover stays below 30 %
    cover = selection["cloud"] + selection["shadow"]
    usable = selection["class"] != "unusable"
    assert ((cover < 0.3) == (selection["class"] == "clear"))[usable].all()
    tiles = pd.read_csv(tmp_path / "results/cloudstats/europa_tiles.csv")
    clear = selection[selection["class"] == "clear"].groupby("tile").size()
    assert (tiles.set_index("tile")["n_clear"] == clear.reindex(tiles["tile"]).fillna(0)).all()
    runs = pd.read_csv(tmp_path / "results/cloudstats/europa_runs.csv")
    assert list(runs.columns) == ["run_length", "count", "date_runs"]
    summary = pd.read_csv(tmp_path / "results/cloudstats/europa_summary.csv")
    assert summary["n_tiles"].iloc[0] == manifest["tile"].nunique()


def test_detector_runs_for_a_folder_without_masks(tmp_path):
    """Real L1C scene (Betsiboka, CC BY-SA 4.0, contains modified Copernicus Sentinel data),
    given as a folder source without masks: the tile stage runs s2cloudless."""
    scene = REPO / "tests/data/s2-l1c-betsiboka/S2L1C_13band_betsiboka.tif"
    images = tmp_path / "l1c"
    images.mkdir()
    (images / "2020-01-15_S2L1C.tif").symlink_to(scene)
    config = tiny_config()
    config["regions"] = {
        "betsiboka": {"source": "folder", "folder": {"images": "l1c/*.tif", "tile_size": 128}}
    }
    write_config(tmp_path, config)
    target = "results/cloudstats/betsiboka_dates.csv"
    snakemake(tmp_path, "-c", "2", target, "results/cloudstats/betsiboka.csv")
    manifest = pd.read_csv(tmp_path / "results/tiles/betsiboka.csv")
    assert manifest["probability"].notna().all()
    coverage = pd.read_csv(tmp_path / "results/cloudstats/betsiboka.csv")
    valid = coverage["valid_fraction"].to_numpy()
    mean_cloud = (coverage["cloud_fraction"] * valid).sum() / valid.sum()
    # the scene's cloud fraction with the SEN12MS-CR-TS settings (0.467; reference mask 0.456)
    assert abs(mean_cloud - 0.456) <= 0.02
    assert coverage["prob_fraction"].notna().all()
    assert set(read_selection(tmp_path / target)["class"]) <= {"clear", "impaired", "unusable"}
