"""The persistence rule table: exactly the schema's rules, each merging one way."""

from __future__ import annotations

import numpy as np
import pytest

from cloudfree.errors import ConfigError
from cloudfree.mosaic.rules import RULES, rule_of
from cloudfree.mosaic.settings import allowed


def test_the_table_holds_exactly_the_rules_the_schema_allows() -> None:
    for key in ("rule", "embedding_rule", "change_rule", "composite.rule"):
        assert list(RULES) == allowed(key), key


def test_each_rule_merges_one_way() -> None:
    for name, rule in RULES.items():
        ways = (rule.order, rule.better, rule.statistic, rule.score)
        assert sum(way is not None for way in ways) == 1, name
        assert (rule.better is None) == (rule.keep is None), name
    assert [n for n, r in RULES.items() if r.per_band_pick] == ["first", "last", "max", "min"]
    assert [n for n, r in RULES.items() if r.stacked] == ["mean", "median"]
    assert [n for n, r in RULES.items() if r.clear_score] == ["best_quality"]
    assert RULES["max"].keep is np.fmax and RULES["min"].keep is np.fmin


def test_unknown_rule_names_the_key_and_the_known_rules() -> None:
    assert rule_of("median") is RULES["median"]
    with pytest.raises(ConfigError, match=r"^mosaic\.composite\.rule: unknown rule 'sum'; known"):
        rule_of("sum", "mosaic.composite.rule")
    with pytest.raises(ConfigError, match=r"^mosaic\.rule: .*first, last, mean, median, max, min"):
        rule_of("sum")
