"""The report's own pages: result tables and the settings of regions, experiments and the rest
of the workflow, as self-contained HTML."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cloudfree.config import resolve_config
from cloudfree.errors import ConfigError
from cloudfree.report_pages import (
    MAX_ROWS,
    experiment_settings,
    flatten,
    region_settings,
    settings_page,
    table_page,
    workflow_settings,
    write_page,
)

from .workflow_run import tiny_config


class Cells(HTMLParser):
    """The text of every table cell (``th`` and ``td``) of a page, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.headings: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th", "h2"):
            self._in = tag
            if tag == "h2":
                self.headings.append("")
            else:
                self.rows[-1].append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == self._in:
            self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "h2":
            self.headings[-1] += data
        elif self._in:
            self.rows[-1][-1] += data


def cells(page: str) -> Cells:
    parser = Cells()
    parser.feed(page)
    return parser


@pytest.fixture(scope="module")
def config() -> dict:
    """The tiny two-region config resolved as the workflow resolves it, with an experiment
    with seeds over both regions and africa's own model beside it."""
    cfg = tiny_config()
    cfg["regions"]["europa"]["synthetic"]["landcover"] = {"forest": 0.6, "water": 0.4}
    cfg["experiments"] = {
        "both": {"regions": ["africa", "europa"], "seeds": [1, 2], "train": {"lr": 0.002}},
        "africa": {"regions": ["africa"]},
    }
    return resolve_config(cfg)


def test_table_page_renders_every_cell_escaped() -> None:
    table = pd.DataFrame(
        {"method": ["model", "<linear>"], "mae": [0.0123456, np.nan], "n": [3, 4],
         "ok": [True, False]}
    )  # fmt: skip
    page = table_page(table, "Metrics of region a & b", "results/metrics/a_summary.csv")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>Metrics of region a &amp; b</title>" in page
    parsed = cells(page)
    assert parsed.rows == [
        ["method", "mae", "n", "ok"],
        ["model", "0.01235", "3", "True"],
        ["<linear>", "", "4", "False"],
    ]
    assert "&lt;linear&gt;" in page and "<linear>" not in page.replace("&lt;linear&gt;", "")
    assert "2 rows, 4 columns; from results/metrics/a_summary.csv" in page


def test_table_page_shows_at_most_max_rows() -> None:
    table = pd.DataFrame({"i": range(MAX_ROWS + 5)})
    parsed = cells(table_page(table, "Dates"))
    assert len(parsed.rows) == MAX_ROWS + 1  # the header and MAX_ROWS rows
    assert parsed.rows[-1] == [str(MAX_ROWS - 1)]
    assert f"{MAX_ROWS + 5} rows, 1 columns; the first {MAX_ROWS} shown" in table_page(table, "D")


def test_flatten_gives_dotted_keys_in_order() -> None:
    nested = {"b": {"y": 1, "x": {"deep": [1, 2]}}, "a": {}, "c": None}
    assert flatten(nested) == [("b.y", 1), ("b.x.deep", [1, 2]), ("a", {}), ("c", None)]


def test_settings_page_lists_each_section() -> None:
    page = settings_page("Settings", {"one": {"k": "text", "l": [1, "a"]}, "two": {"n": None}})
    parsed = cells(page)
    assert parsed.headings == ["one", "two"]
    assert parsed.rows == [
        ["key", "value"], ["k", "text"], ["l", '[1, "a"]'], ["key", "value"], ["n", "null"]
    ]  # fmt: skip


def test_region_settings_hold_the_resolved_region(config) -> None:
    sections = region_settings(config, "europa", {})
    assert list(sections) == ["regions.europa", "regions.europa: experiments over it"]
    region = dict(flatten(sections["regions.europa"]))
    assert region["source"] == "synthetic"
    assert region["synthetic.cloudiness"] == 0.5 and region["synthetic.seed"] == 23
    assert region["synthetic.landcover.forest"] == 0.6
    assert region["synthetic.n_dates"] == 6  # given
    assert region["synthetic.start"] == config["regions"]["europa"]["synthetic"]["start"]  # default
    assert sections["regions.europa: experiments over it"] == {
        "experiments": ["both"], "reference": "both"
    }  # fmt: skip
    page = settings_page("Settings of region europa", sections)
    assert ["synthetic.landcover.water", "0.4"] in cells(page).rows
    with pytest.raises(KeyError, match=r"regions\.asia"):
        region_settings(config, "asia", {})


def test_region_settings_leave_out_how_files_are_fetched() -> None:
    stac = {"url": "https://stac.example/v1", "collection": "s2", "retries": 3,
            "timeout": 30, "token_env": "STAC_TOKEN"}  # fmt: skip
    cfg = {"regions": {"r": {"source": "stac", "stac": stac}}, "experiments": {},
           "evaluation": {"inductive": {"enabled": False}}}  # fmt: skip
    detector = {"detector": {"threshold": 0.4}}
    sections = region_settings(cfg, "r", detector)
    settings = dict(flatten(sections["regions.r"]))
    assert settings == {
        "source": "stac", "stac.url": "https://stac.example/v1", "stac.collection": "s2"
    }  # fmt: skip
    assert list(sections)[-1] == "clouds: what the region's cloud masks are detected with"
    assert sections["clouds: what the region's cloud masks are detected with"] == detector


def test_experiment_settings_merge_the_overrides(config) -> None:
    sections = experiment_settings(config, "both")
    head, train = sections.values()
    assert head == {
        "regions": ["africa", "europa"],
        "runs": ["both/seed1", "both/seed2"],
        "train overrides": {"lr": 0.002},
    }
    assert train["lr"] == 0.002 and train["steps"] == 30
    assert "num_workers" not in train and "checkpoint_every" not in train
    own = experiment_settings(config, "africa")
    assert next(iter(own.values()))["runs"] == ["africa"]
    assert next(iter(own.values()))["train overrides"] == {}
    with pytest.raises(ConfigError, match="unknown experiment"):
        experiment_settings(config, "asia")


def test_workflow_settings_are_the_other_sections(config) -> None:
    sections = workflow_settings(config)
    assert {"clouds", "evaluation", "infer", "mosaic", "metrics"} <= set(sections)
    assert not {"regions", "experiments", "train"} & set(sections)
    assert "batch_size" not in sections["infer"]  # how inference runs, not what it makes
    assert list(sections["clouds"]) == ["selection"]  # the detector: on the region pages
    assert sections["evaluation"]["inductive"]["tiles_x"] == 2


def test_write_page_is_atomic(tmp_path: Path) -> None:
    write_page("<html></html>", tmp_path / "p.html")
    assert (tmp_path / "p.html").read_text() == "<html></html>"
    assert [p.name for p in tmp_path.iterdir()] == ["p.html"]
