"""Tests of cloudfree.train.params and of the train section the schema resolves."""

from __future__ import annotations

import pytest

from cloudfree.config import section
from cloudfree.errors import ConfigError
from cloudfree.train.params import check_params


def test_the_schema_fills_in_the_train_section() -> None:
    p = section("train", {"steps": 10, "model": {"widths": [8, 16]}})
    assert p["steps"] == 10 and p["model"]["name"] == "utilise" and p["model"]["heads"] == 4
    assert p["model"]["widths"] == [8, 16]
    assert p["sampling"] == {
        "seq_len": None, "min_len": None, "max_gap_days": None, "date_classes": None,
        "masked_fraction": None, "dilation": 0, "masking": "donor",
    }  # fmt: skip
    assert p["model"]["prior"] == "linear_offset"
    assert p["augment"] == {"flips": True, "gain": 0.05, "offset": 0.01, "doy_shift": 15}
    check_params(p)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"steps": "ten"}, "steps"),
        ({"batch_size": 0}, "batch_size"),
        ({"compile": "yes"}, "compile"),
        ({"patience": -1}, "patience"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
        ({"num_workers": "many"}, "num_workers"),
        ({"device": "tpu"}, "device"),
        ({"model": {"name": "nosuchnet"}}, "model"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_the_schema_refuses_a_bad_value_naming_its_key(values: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=r"^train(\.\w+)*: ") as err:
        section("train", values)
    first = str(err.value).split(": ")[0]
    assert first == f"train.{key}" or first.startswith(f"train.{key}.") or key in str(err.value)


def test_cross_key_checks_name_the_keys() -> None:
    with pytest.raises(ConfigError, match=r"train\.masked_weight \+ train\.observed_weight"):
        check_params(section("train", {"masked_weight": 0, "observed_weight": 0}))


def test_an_unresolved_section_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"train\.batch_size.*train\.warmup_steps.*section\('train'"
    ):
        check_params({"steps": 10, "model": {"name": "utilise"}})
