"""Tests of cloudfree.tiles.s1align: Sentinel-1 acquisitions matched to S2 dates by the
nearest day."""

from __future__ import annotations

import pytest

from cloudfree.errors import ConfigError, InputDataError
from cloudfree.tiles.s1align import nearest_acquisitions, nearest_days

S1 = ["2021-01-03", "2021-01-15", "2021-01-27"]


def test_the_nearest_acquisition_within_max_days() -> None:
    s2 = ["2021-01-03", "2021-01-05", "2021-01-13", "2021-01-16", "2021-01-26"]
    assert nearest_acquisitions(s2, S1, 6) == [0, 0, 1, 1, 2]
    assert nearest_acquisitions(s2, S1, 0) == [0, None, None, None, None]
    assert nearest_acquisitions(s2, S1, 1) == [0, None, None, 1, 2]


def test_ties_go_to_the_earlier_acquisition() -> None:
    assert nearest_acquisitions(["2021-01-09", "2021-01-21"], S1, 6) == [0, 1]
    # the order of the S1 list does not matter; indices are into the list as given
    shuffled = [S1[2], S1[0], S1[1]]
    assert nearest_acquisitions(["2021-01-09", "2021-01-21"], shuffled, 6) == [1, 2]
    # two acquisitions on one day: the first listed
    assert nearest_acquisitions(["2021-01-04"], ["2021-01-03", "2021-01-03"], 2) == [0]


def test_none_beyond_max_days_and_across_years() -> None:
    s2 = ["2020-12-20", "2020-12-30", "2021-01-10", "2021-02-20"]
    assert nearest_acquisitions(s2, S1, 5) == [None, 0, 1, None]
    assert nearest_acquisitions(s2, [], 100) == [None] * 4
    assert nearest_acquisitions([], S1, 3) == []


@pytest.mark.parametrize(
    ("s2", "s1", "named"),
    [
        (["2021-02-30"], S1, "S2 dates: date '2021-02-30'"),
        (["2021-01-05"], ["2021-01-03", "20210115"], "S1 dates: date '20210115'"),
        (["2021-01-05"], ["2021-01-03", None], "S1 dates: date None"),
    ],
)
def test_bad_dates_are_named(s2: list, s1: list, named: str) -> None:
    with pytest.raises(InputDataError, match=named):
        nearest_acquisitions(s2, s1, 6)


@pytest.mark.parametrize("max_days", [-1, 1.5, True, "6"])
def test_max_days_is_an_integer_from_0(max_days: object) -> None:
    with pytest.raises(ConfigError, match="max_days must be an integer >= 0"):
        nearest_acquisitions(["2021-01-05"], S1, max_days)  # type: ignore[arg-type]


def test_nearest_days_gives_the_s1_date_and_its_offset():
    s1 = ["2021-03-10", "2021-02-27", "2021-03-29"]
    got = nearest_days(["2021-03-02", "2021-03-12", "2021-03-22"], s1, 6)
    assert got == {"2021-03-02": ("2021-02-27", -3), "2021-03-12": ("2021-03-10", -2)}
    assert nearest_days(["2021-03-22"], s1, 7) == {"2021-03-22": ("2021-03-29", 7)}
