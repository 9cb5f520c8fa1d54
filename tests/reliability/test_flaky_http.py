"""A flaky STAC API and COG server: dropped, stalled and failed requests are retried; a server
that keeps failing gives a clear error after the configured attempts; the API token comes from
the environment and never reaches a log or an output."""

from __future__ import annotations

import logging

import pytest

from cloudfree.errors import ConfigError, InputDataError
from cloudfree.tiles.region import download_tiles, staging_dir
from tests.stac_server import StacServer, make_scenes
from tests.tiles.test_stac import stac_cfg

pytestmark = pytest.mark.reliability
DATES = ["2021-03-02", "2021-03-22"]
TOKEN = "s3cr3t-t0ken-4242"


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("cogs")
    return root, make_scenes(root, DATES, [10.0, 20.0])


def run(tmp_path, cfg):
    tiles, csv = tmp_path / "resources/tiles/s", tmp_path / "results/tiles/s.csv"
    return download_tiles("s", {"source": "stac", "stac": cfg}, tiles, csv, {}), tiles, csv


def test_drops_stalls_and_errors_are_retried(tmp_path, scenes):
    root, items = scenes
    flaky = {"fail_every": 11, "drop_every": 7, "stall_every": 13, "stall_seconds": 2.5}
    with StacServer(root, items, **flaky) as server:
        manifest, tiles, _ = run(tmp_path, stac_cfg(server.url, timeout=1, retries=6))
    assert server.failures and server.drops and server.stalls  # all three faults happened
    assert sorted(manifest["date"].unique()) == DATES
    assert len(manifest) == 2 * manifest["tile"].nunique()
    assert not staging_dir(tiles).exists()


@pytest.mark.parametrize(
    ("fault", "kwargs"),
    [("error", {"fail_paths": "/cogs/"}), ("stall", {"stall_every": 1, "stall_seconds": 2})],
)
def test_a_server_that_keeps_failing_gives_a_clear_error(tmp_path, scenes, fault, kwargs):
    root, items = scenes
    with StacServer(root, items, **kwargs) as server:
        cfg = stac_cfg(server.url, timeout=1, retries=1, backoff=0.01)
        with pytest.raises(InputDataError, match=r"tried up to 2 times|cannot be reached"):
            run(tmp_path, cfg)
    assert not (tmp_path / "results/tiles/s.csv").exists()
    assert not (tmp_path / "resources/tiles/s").exists()


def test_the_token_is_sent_but_never_logged_or_written(tmp_path, scenes, monkeypatch, caplog):
    root, items = scenes
    monkeypatch.setenv("CLOUDFREE_TEST_STAC_TOKEN", TOKEN)
    caplog.set_level(logging.DEBUG)  # pystac-client logs request headers at DEBUG
    with StacServer(root, items, token=TOKEN) as server:
        _, tiles, csv = run(tmp_path, stac_cfg(server.url, token_env="CLOUDFREE_TEST_STAC_TOKEN"))
    assert server.unauthorised == 0 and len(server.cog_requests()) > 0
    assert "Bearer ***" in caplog.text  # the header was logged, redacted
    assert TOKEN not in caplog.text
    for path in [csv, *tiles.rglob("*")]:
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes(), path


def test_a_missing_token_is_named_and_a_wrong_one_refused(tmp_path, scenes, monkeypatch):
    root, items = scenes
    monkeypatch.delenv("CLOUDFREE_TEST_STAC_TOKEN", raising=False)
    with StacServer(root, items, token=TOKEN) as server:
        cfg = stac_cfg(server.url, token_env="CLOUDFREE_TEST_STAC_TOKEN", retries=0)
        with pytest.raises(ConfigError, match="CLOUDFREE_TEST_STAC_TOKEN"):
            run(tmp_path, cfg)
        monkeypatch.setenv("CLOUDFREE_TEST_STAC_TOKEN", "wrong")
        with pytest.raises(InputDataError, match="cannot be reached") as err:
            run(tmp_path, cfg)
    assert "wrong" not in str(err.value)
