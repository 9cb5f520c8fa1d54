"""Tests of cloudfree.tiles.synthetic.spec: the spec from resolved settings, its checks."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest

from cloudfree.config import source_settings
from cloudfree.errors import ConfigError
from cloudfree.tiles.synthetic.spec import SyntheticSpec

from .specs import settings, synthetic_spec


def test_spec_from_resolved_settings() -> None:
    spec = SyntheticSpec.from_dict(source_settings("synthetic", {}))
    # the schema's defaults, as the workflow sees them
    assert (spec.seed, spec.tiles_x, spec.tiles_y, spec.tile_size, spec.overlap) == (
        0,
        3,
        3,
        64,
        16,
    )
    assert (spec.n_dates, spec.start, spec.end, spec.cloudiness) == (
        12,
        "2021-01-01",
        "2021-12-31",
        0.4,
    )
    assert spec.crs == "EPSG:32632" and spec.origin == (500000.0, 5000000.0)
    assert spec.landcover == {
        "water": 0.05, "forest": 0.2, "cropland": 0.4, "grassland": 0.2, "bare": 0.1, "urban": 0.05,
    }  # fmt: skip
    assert (spec.resolution, spec.val_fraction, spec.test_fraction) == (10.0, 0.2, 0.2)
    assert (spec.haze, spec.outages, spec.change_rate) == (0.5, 0.15, 0.05)
    assert spec.mask_errors is True and spec.native_resolution is True
    assert spec.exclude_dates == () and spec.test_only is False
    assert spec.region_shape == (3 * 48 + 16, 3 * 48 + 16)
    assert spec.step == 48
    # YAML gives dates as date objects and origins as lists.
    spec = SyntheticSpec.from_dict(
        {**settings(landcover={"water": 1}, seed=3), "start": dt.date(2020, 5, 1), "origin": [1, 2]}
    )
    assert spec.start == "2020-05-01" and spec.origin == (1.0, 2.0)
    assert spec.landcover == {"water": 1.0}
    assert spec.seed == 3 and isinstance(spec.resolution, float)
    # excluded dates as the YAML gives them: date objects or strings; sorted, unique
    excl = SyntheticSpec.from_dict(
        {**settings(), "exclude_dates": ["2021-05-02", dt.date(2021, 1, 3), "2021-05-02"]}
    )
    assert excl.exclude_dates == ("2021-01-03", "2021-05-02")
    assert excl.as_dict()["exclude_dates"] == ["2021-01-03", "2021-05-02"]
    assert SyntheticSpec.from_dict(excl.as_dict()) == excl


def test_split_block_is_2_from_8_blocks_of_2x2() -> None:
    assert synthetic_spec(tiles_x=3, tiles_y=3).split_block == 1  # 4 blocks of 2 x 2
    assert synthetic_spec(tiles_x=4, tiles_y=7).split_block == 2  # 2 x 4 = 8 blocks
    assert synthetic_spec(tiles_x=6, tiles_y=6).split_block == 2
    assert synthetic_spec(tiles_x=3, tiles_y=1).split_block == 1


# Bad values the schema refuses (its message names the dotted key) and those only the
# spec can check (its message names the key as 'key').
@pytest.mark.parametrize(
    ("d", "named"),
    [
        ({"colour": 1}, "'colour' was unexpected"),
        ({"tiles_x": -1}, "synthetic.tiles_x:"),
        ({"tiles_y": 1.5}, "synthetic.tiles_y:"),
        ({"tile_size": 0}, "synthetic.tile_size:"),
        ({"overlap": -2}, "synthetic.overlap:"),
        ({"overlap": 64}, "synthetic.overlap"),
        ({"tiles_x": 1, "tiles_y": 2}, "'tiles_x'"),
        ({"n_dates": 0}, "synthetic.n_dates:"),
        ({"n_dates": 80}, "'n_dates'"),
        ({"seed": "abc"}, "synthetic.seed:"),
        ({"seed": True}, "synthetic.seed:"),
        ({"cloudiness": 1.5}, "synthetic.cloudiness:"),
        ({"val_fraction": 0}, "synthetic.val_fraction:"),
        ({"test_fraction": 1.2}, "synthetic.test_fraction:"),
        ({"val_fraction": 0.5, "test_fraction": 0.5}, "'test_fraction'"),
        ({"landcover": {"snow": 1.0}}, "'snow' was unexpected"),
        ({"landcover": {"water": -1.0}}, "synthetic.landcover.water:"),
        ({"landcover": {"water": 0.0}}, "'landcover'"),
        ({"landcover": []}, "synthetic.landcover:"),
        ({"crs": "EPSG:4326"}, "'crs'"),
        ({"crs": "not a crs"}, "'crs'"),
        ({"start": "2021-13-01"}, "start"),  # the config check or the spec's: both name it
        ({"end": "2020-01-01"}, "end"),
        ({"origin": [1.0]}, "synthetic.origin:"),
        ({"resolution": 0}, "synthetic.resolution:"),
        ({"haze": -0.1}, "synthetic.haze:"),
        ({"outages": 0.9}, "synthetic.outages:"),
        ({"change_rate": 0.6}, "synthetic.change_rate:"),
        ({"mask_errors": "yes"}, "synthetic.mask_errors:"),
        ({"native_resolution": 1}, "synthetic.native_resolution:"),
        ({"exclude_dates": "2021-01-01"}, "synthetic.exclude_dates:"),
        ({"exclude_dates": ["2021-02-30"]}, "exclude_dates"),
        ({"test_only": "no"}, "synthetic.test_only:"),
        ({"max_tiles": 0}, "synthetic.max_tiles:"),
        ({"max_memory_gb": 0}, "synthetic.max_memory_gb:"),
    ],
)
def test_bad_spec_raises_config_error_naming_key(d: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(named)):
        synthetic_spec(**d)


def test_checks_the_schema_cannot_make_hold_for_any_construction() -> None:
    spec = synthetic_spec()
    with pytest.raises(ConfigError, match="'overlap' must be smaller than tile_size"):
        dataclasses.replace(spec, tile_size=32, overlap=40)
    with pytest.raises(ConfigError, match="'n_dates' exceeds the 3 5-day revisits"):
        dataclasses.replace(spec, n_dates=4, start="2021-01-01", end="2021-01-11")
    with pytest.raises(ConfigError, match="'landcover' needs at least one positive weight"):
        SyntheticSpec.from_dict({**settings(), "landcover": {"water": 0}})
    with pytest.raises(ConfigError, match="'overlap'"):
        SyntheticSpec.from_dict({**settings(), "overlap": 64})


def test_unresolved_or_unknown_keys_are_named() -> None:
    with pytest.raises(ConfigError, match="mapping"):
        SyntheticSpec.from_dict([("seed", 1)])  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError, match=r"synthetic: missing keys \['tiles_x'\].*source_settings"
    ):
        SyntheticSpec.from_dict({k: v for k, v in settings().items() if k != "tiles_x"})
    with pytest.raises(ConfigError, match=r"synthetic: unknown keys \['colour'\]"):
        SyntheticSpec.from_dict({**settings(), "colour": 1})


def test_spec_is_hashable_by_value() -> None:
    a = synthetic_spec(landcover={"water": 1, "forest": 1})
    assert a.landcover == {"water": 1.0, "forest": 1.0}
    b = dataclasses.replace(synthetic_spec(), landcover={"forest": 1.0, "water": 1.0})
    assert {a: 1}[b] == 1
