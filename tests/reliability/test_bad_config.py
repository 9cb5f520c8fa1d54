"""Bad configs fail before any job runs, with a message that names the key or value."""

import pytest

from cloudfree.errors import ConfigError
from cloudfree.preflight import check_workflow_config
from tests.workflow_run import snakemake, tiny_config, write_config

pytestmark = pytest.mark.reliability


def set_key(config: dict, path: tuple[str, ...], value: object) -> dict:
    """``config`` with the key at ``path`` set to ``value`` (deleted for ``_DELETE``)."""
    node = config
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return config


_DELETE = object()

CASES = {
    "wrong type": (("train", "steps"), "many", "many"),
    "unknown key": (("train", "learning_rate"), 0.1, "learning_rate"),
    "negative size": (("regions", "africa", "synthetic", "tile_size"), -32, "-32"),
    "empty region list": (("regions",), {}, "regions"),
    "unknown source": (("regions", "africa", "source"), "dropbox", "dropbox"),
    "region name that is a path": (("regions", "../../etc"), {"source": "synthetic"}, "etc"),
    "experiment of an unknown region": (
        ("experiments",), {"shared": {"regions": ["atlantis"]}}, "atlantis",
    ),
    "overlap not below the tile size": (
        ("regions", "africa", "synthetic", "overlap"), 32, "overlap",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_is_refused_with_its_key_named(case):
    path, value, named = CASES[case]
    config = set_key(tiny_config(), path, value)
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        check_workflow_config(config)  # as the workflow checks it


@pytest.mark.e2e
@pytest.mark.parametrize("case", ["unknown key", "region name that is a path", "negative size"])
def test_the_workflow_refuses_it_before_any_job(tmp_path, case):
    path, value, named = CASES[case]
    write_config(tmp_path, set_key(tiny_config(), path, value))
    proc = snakemake(tmp_path, "-n", check=False)
    assert proc.returncode != 0, proc.stdout
    assert named in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / "resources").exists()


@pytest.mark.e2e
def test_missing_config_file_is_named(tmp_path):
    proc = snakemake(tmp_path, "-n", config=tmp_path / "nowhere.yaml", check=False)
    assert proc.returncode != 0
    assert "nowhere.yaml" in proc.stdout + proc.stderr
