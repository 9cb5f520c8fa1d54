"""Tests of cloudfree.clouds.selection: the date classes and the date-selection table."""

import numpy as np
import pandas as pd
import pytest

from cloudfree.clouds.selection import (
    CLASSES,
    COLUMNS,
    classify_dates,
    dates_of,
    read_selection,
    selection_table,
)
from cloudfree.config import section
from cloudfree.errors import ConfigError, InputDataError

DEFAULT = section("clouds")["selection"]


def selection_settings(values: dict | None = None) -> dict:
    """The resolved ``clouds.selection`` section with ``values`` over the schema's defaults."""
    return section("clouds", {"selection": values or {}})["selection"]


def _table(cloud, prob=None, shadow=0.0, valid=1.0):
    n = len(cloud)
    table = pd.DataFrame(
        {
            "tile": ["a"] * n,
            "date": [f"2021-01-{k + 1:02d}" for k in range(n)],
            "cloud_fraction": cloud,
            "shadow_fraction": np.broadcast_to(shadow, n),
            "valid_fraction": np.broadcast_to(valid, n),
        }
    )
    table["clear_fraction"] = 1 - table["cloud_fraction"] - table["shadow_fraction"]
    if prob is not None:
        table["prob_fraction"] = prob
    return table


def test_u_tilise_rules_with_probability():
    s = DEFAULT
    # mask cover / share above 1 % probability -> U-TILISE decision
    table = _table(
        cloud=[0.0, 0.40, 0.11, 0.11, 0.04, 0.04, 0.03, 0.39],
        prob=[0.9, 0.0, 0.02, 0.005, 0.05, 0.03, 0.9, 0.0],
    )
    got = classify_dates(table, s).tolist()
    assert got == [
        "clear",  # no mask cover (probability alone does not impair)
        "impaired",  # >= 40 % mask cover
        "impaired",  # > 1 % prob and > 10 % cover
        "clear",  # > 10 % cover but prob share below 1 %
        "impaired",  # > 4 % prob and > 3.5 % cover
        "clear",  # 3 % prob share is below 4 %, 4 % cover below 10 %
        "clear",  # cover 3 % below 3.5 %
        "clear",  # 39 % cover, no probability above 1 %
    ]


def test_mask_only_rule_and_unusable():
    s = DEFAULT
    table = _table(cloud=[0.0, 0.049, 0.05, 1.0, np.nan], valid=[1, 1, 1, 1, 0])
    assert classify_dates(table, s).tolist() == [
        "clear", "clear", "impaired", "unusable", "unusable",
    ]  # fmt: skip


def test_shadow_counts_unless_configured_off():
    table = _table(cloud=[0.01], shadow=0.3)
    assert classify_dates(table, DEFAULT).tolist() == ["impaired"]
    off = selection_settings({"count_shadow": False})
    assert classify_dates(table, off).tolist() == ["clear"]


def test_max_coverage_makes_dates_unusable():
    s = selection_settings({"max_coverage": 0.8})
    assert classify_dates(_table(cloud=[0.79, 0.8]), s).tolist() == ["impaired", "unusable"]


def test_selection_file_round_trip(tmp_path):
    table = _table(cloud=[0.0, 0.5, 0.0])
    table["split"] = "train"
    sel = selection_table(table, DEFAULT)
    assert tuple(sel.columns[: len(COLUMNS)]) == COLUMNS
    path = tmp_path / "r_dates.csv"
    sel.to_csv(path, index=False)
    back = read_selection(path)
    assert back["class"].tolist() == ["clear", "impaired", "clear"]
    assert dates_of(back, "a") == ["2021-01-01", "2021-01-03"]
    assert dates_of(back, "a", "impaired") == ["2021-01-02"]


def test_bad_selection_file_and_config(tmp_path):
    path = tmp_path / "bad.csv"
    pd.DataFrame({"tile": ["a"], "date": ["2021-01-01"]}).to_csv(path, index=False)
    with pytest.raises(InputDataError, match=r"bad\.csv: missing columns"):
        read_selection(path)
    bad = tmp_path / "classes.csv"
    pd.DataFrame({c: ["x"] for c in COLUMNS}).to_csv(bad, index=False)
    with pytest.raises(InputDataError, match=r"classes\.csv: unknown classes \['x'\]"):
        read_selection(bad)
    with pytest.raises(InputDataError, match="cannot read date selection"):
        read_selection(tmp_path / "absent.csv")


def test_bad_selection_config_names_the_key():
    # the schema is the check: unknown keys and rules fail before any job runs
    with pytest.raises(ConfigError, match=r"^clouds\.selection: .*'mask_maximum' was unexpected"):
        selection_settings({"mask_maximum": 0.3})
    with pytest.raises(ConfigError, match=r"'fmask' is not one of \['u-tilise', 'threshold'\]"):
        selection_settings({"rule": "fmask"})


def test_the_defaults_are_u_tilise_s():
    assert DEFAULT["rule"] == "u-tilise" and DEFAULT["mask_max"] == 0.4
    assert DEFAULT["prob_threshold"] == 0.01 and DEFAULT["mask_only_max"] == 0.05
    assert DEFAULT["prob_rules"] == [[0.01, 0.10], [0.04, 0.035]]
    assert CLASSES == ("clear", "impaired", "unusable")


def test_threshold_rule_ignores_probabilities():
    s = selection_settings({"rule": "threshold", "mask_only_max": 0.3})
    table = _table(cloud=[0.29, 0.3, 0.05], prob=[0.9, 0.0, 0.9])
    assert classify_dates(table, s).tolist() == ["clear", "impaired", "clear"]
