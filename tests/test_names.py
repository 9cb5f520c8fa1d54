import pytest

from cloudfree.errors import ConfigError, InputDataError
from cloudfree.names import check_date, check_name


@pytest.mark.parametrize("name", ["africa", "t00_01", "ROIs1158_106-3", "a" * 128, "0b"])
def test_safe_names_pass(name):
    assert check_name(name, "tile", "x.h5") == name


@pytest.mark.parametrize(
    "name", ["..", ".", "", "/etc/x", "../up", "a/b", "africa\n", "a" * 129, "-x", "_x", "a b", 3]
)
def test_names_that_could_become_other_paths_are_refused(name):
    with pytest.raises(InputDataError, match=r"x\.h5: tile name"):
        check_name(name, "tile", "x.h5")


def test_the_error_class_is_the_callers():
    with pytest.raises(ConfigError, match="regions: region name"):
        check_name("a\n", "region", "regions", ConfigError)


def test_dates_must_exist():
    assert check_date("2024-02-29", "f") == "2024-02-29"
    for bad in ("2021-02-30", "2021-13-01", "2021-1-01", "2021-01-01\n", None):
        with pytest.raises(InputDataError, match="f: date"):
            check_date(bad, "f")
