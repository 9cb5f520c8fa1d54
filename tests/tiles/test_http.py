"""Tests of cloudfree.tiles.http and cloudfree.tiles.hosts: SAS signing, retries, secrets
kept out of logs, and which hosts get the token and may serve COGs."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from rasterio.errors import RasterioIOError

from cloudfree.errors import ConfigError, InputDataError
from cloudfree.tiles.hosts import HostPolicy, HostRule, url_origin
from cloudfree.tiles.http import SasSigner, bearer_token, read_once, redacted
from cloudfree.tiles.stac import StacSpec

from ..stac_server import StacServer, make_scenes
from .test_stac import SAS, stac_cfg


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("cogs")
    return root, make_scenes(root, ["2021-03-02"], [10.0])


def test_sas_token_is_renewed_before_it_expires(scenes):
    root, items = scenes
    spec = StacSpec.from_dict(stac_cfg("http://unused", sign="planetary_computer"))
    with StacServer(root, items, sas_token=SAS, sas_seconds=60) as server:
        signer = SasSigner(replace(spec, sign_url=server.url + "/sas/"), set(), margin=300)
        assert signer.sign("https://a/b.tif") == "https://a/b.tif?" + SAS
        assert signer.sign("https://a/b.tif?x=1") == "https://a/b.tif?x=1&" + SAS
        assert server.sas_fetches == 2  # expires within the margin: fetched again
        signer.margin = 10
        signer.sign("https://a/b.tif")
        assert server.sas_fetches == 2
    assert signer.clean(f"GET https://a/b.tif?{SAS} failed") == "GET https://a/b.tif?*** failed"
    bad = SasSigner(replace(spec, sign_url="http://127.0.0.1:9/sas", retries=0, timeout=1), set())
    with pytest.raises(InputDataError, match=r"SAS token for sentinel-2-l2a .*stac\.sign_url"):
        bad.sign("https://a/b.tif")


def test_a_failed_read_names_the_asset_and_the_tries_without_the_secret():
    calls = []

    def broken() -> int:
        calls.append(1)
        raise RasterioIOError("HTTP 503 on https://a/b.tif?sig=s3cr3t")

    clean = lambda text: text.replace("s3cr3t", "***")  # noqa: E731
    with pytest.raises(InputDataError) as err:
        read_once(broken, "b.tif", retries=2, clean=clean)
    assert len(calls) == 1  # GDAL retried the requests; nothing on top
    assert str(err.value) == (
        "b.tif: failed (each HTTP request tried up to 3 times): HTTP 503 on https://a/b.tif?sig=***"
    )
    assert read_once(lambda: 7, "b.tif", retries=0) == 7


def test_redacted_keeps_secrets_found_later_out_of_the_logs(caplog):
    secrets = {"first-token"}
    with caplog.at_level(logging.INFO), redacted(secrets):
        logging.getLogger("pystac_client").info("Authorization: Bearer %s", "first-token")
        secrets.add("later-token")
        logging.getLogger("anything").info("url?%s", "later-token")
    assert "first-token" not in caplog.text and "later-token" not in caplog.text
    assert caplog.text.count("***") == 2


def test_the_bearer_token_comes_from_the_named_variable(monkeypatch):
    spec = StacSpec.from_dict(stac_cfg("http://x", token_env="CLOUDFREE_TEST_TOKEN"))
    monkeypatch.setenv("CLOUDFREE_TEST_TOKEN", "t0k")
    assert bearer_token(spec) == "t0k"
    monkeypatch.delenv("CLOUDFREE_TEST_TOKEN")
    with pytest.raises(ConfigError, match=r"stac\.token_env: environment variable CLOUDFREE_TEST"):
        bearer_token(spec)
    assert bearer_token(StacSpec.from_dict(stac_cfg("http://x"))) is None


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Earth-Search.example/v1", ("https", "earth-search.example", 443)),
        ("http://127.0.0.1:8080/cogs/a.tif", ("http", "127.0.0.1", 8080)),
        ("http://[::1]/a.tif", ("http", "::1", 80)),
        ("/data/a.tif", None),
        ("file:///data/a.tif", None),
        ("/vsicurl/https://host/a.tif", None),
        ("s3://bucket/a.tif", None),
        ("a.tif", None),
        ("http://host:99999/a.tif", None),
        ("https:///a.tif", None),
    ],
)
def test_url_origin_is_scheme_host_and_port_of_http_urls_only(url, origin):
    assert url_origin(url) == origin


def test_the_token_goes_to_the_api_origin_and_token_hosts_only():
    cfg = stac_cfg("https://api.example/v1", token_hosts=["cogs.example", "*.blob.example:8443"])
    policy = HostPolicy.of(StacSpec.from_dict(cfg))
    assert policy.gets_token("https://api.example/v1/search?page=2")
    assert not policy.gets_token("http://api.example/v1")  # another scheme and port
    assert not policy.gets_token("https://api.example:8443/v1")  # another port
    assert not policy.gets_token("https://api.example.evil/v1")
    assert policy.gets_token("https://cogs.example/a.tif")
    assert not policy.gets_token("http://cogs.example/a")  # never unencrypted to another host
    assert not policy.gets_token("https://cogs.example:444/a.tif")
    assert policy.gets_token("https://x.blob.example:8443/a.tif")
    assert not policy.gets_token("https://blob.example:8443/a.tif")  # subdomains only
    assert not policy.gets_token("https://xblob.example:8443/a.tif")
    assert not policy.gets_token("file:///etc/passwd")


def test_asset_hrefs_are_remote_urls_on_the_allowed_hosts():
    anywhere = HostPolicy.of(StacSpec.from_dict(stac_cfg("https://api.example")))
    assert anywhere.asset_problem("https://cogs.elsewhere/a.tif") is None  # default: any host
    for href in ("/data/a.tif", "file:///data/a.tif", "/vsis3/b/a.tif", "a.tif"):
        assert "is not an http(s) URL" in str(anywhere.asset_problem(href))
    cfg = stac_cfg("https://api.example", token_hosts=["t.example"], asset_hosts=["a.example"])
    listed = HostPolicy.of(StacSpec.from_dict(cfg))
    for href in ("https://api.example/a.tif", "https://t.example/a", "https://a.example/a"):
        assert listed.asset_problem(href) is None
    assert "is on cogs.elsewhere:443" in str(listed.asset_problem("https://cogs.elsewhere/a"))


@pytest.mark.parametrize("entry", ["host/path", "user@host", "a*b.example", "host:http", ""])
def test_a_host_entry_that_is_not_a_host_is_a_config_error(entry):
    with pytest.raises(ConfigError, match=r"regions\.x\.stac\.token_hosts: .* is not a host"):
        HostRule.parse(entry, "regions.x.stac.token_hosts")
    assert HostRule.parse("Cogs.Example:8080", "k") == HostRule("cogs.example", 8080)
