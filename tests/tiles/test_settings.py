"""Tests of cloudfree.tiles.settings: a section must hold exactly its spec's keys."""

from dataclasses import dataclass

import pytest

from cloudfree.errors import ConfigError
from cloudfree.tiles.settings import check_keys


@dataclass(frozen=True)
class Spec:
    size: int
    name: str
    token: str | None = None  # optional in the schema, without a default


def test_exact_keys_pass_and_an_optional_one_may_be_absent():
    check_keys("demo", {"size": 1, "name": "a"}, Spec)
    check_keys("demo", {"size": 1, "name": "a", "token": "t"}, Spec)


def test_unknown_and_missing_keys_are_named():
    with pytest.raises(ConfigError, match=r"demo: unknown keys \['colour'\]; known keys: size"):
        check_keys("demo", {"size": 1, "name": "a", "colour": 2}, Spec)
    with pytest.raises(ConfigError, match=r"demo: missing keys \['name'\]; resolve the section"):
        check_keys("demo", {"size": 1}, Spec)
