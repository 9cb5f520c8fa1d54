"""Pages of the workflow's HTML report: a results table, and the settings of a region, an
experiment or the rest of the workflow, each one self-contained HTML file.

Snakemake's report shows HTML, images and PDF in place and offers any other file (a CSV) as a
download: a table is rendered here to be read in the report.  The settings come from a
config as the workflow resolved it (every default filled in).  Writes one file atomically.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cloudfree.config import EXECUTION_KEYS, region_result_settings
from cloudfree.experiments import experiment_regions, experiments_of, reference_of, run_train, runs
from cloudfree.io import atomic_path

MAX_ROWS = 1000  # rows of a table shown in the report; the CSV holds them all
# Config sections shown on the region and experiment pages, or on none (``base``).
OWN_PAGES = ("regions", "experiments", "train", "base")
# Keys of the other sections that apply to some regions only: on those regions' pages.
REGION_KEYS = {"clouds": ("detector",)}

STYLE = """
body { font: 13px/1.4 system-ui, sans-serif; margin: 12px; color: #111; }
h1 { font-size: 16px; margin: 0 0 4px; } h2 { font-size: 14px; margin: 16px 0 4px; }
p.note { color: #555; margin: 2px 0 8px; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
th { background: #eef; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.key { font-family: ui-monospace, monospace; white-space: nowrap; }
tr:nth-child(even) td { background: #f7f7fa; }
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n"
    )


def _cell(value: Any) -> str:
    """One table cell: numbers right-aligned with 4 significant digits, missing values empty."""
    if isinstance(value, (bool, np.bool_)):
        return f"<td>{value}</td>"
    if isinstance(value, (int, float, np.integer, np.floating)):
        if pd.isna(value):
            return "<td class='num'></td>"
        text = f"{value:.4g}" if isinstance(value, (float, np.floating)) else str(value)
        return f"<td class='num'>{text}</td>"
    return "<td></td>" if pd.isna(value) else f"<td>{html.escape(str(value))}</td>"


def table_page(table: pd.DataFrame, title: str, source: str = "") -> str:
    """``table`` as an HTML page: a header row and at most :data:`MAX_ROWS` rows (a note says
    how many more the file ``source`` holds)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    shown = table.head(MAX_ROWS)
    rows = "\n".join(
        "<tr>" + "".join(_cell(v) for v in row) + "</tr>"
        for row in shown.itertuples(index=False, name=None)
    )
    note = f"{len(table)} rows, {len(table.columns)} columns"
    if len(table) > len(shown):
        note += f"; the first {len(shown)} shown"
    if source:
        note += f"; from {source}"
    body = (
        f"<p class='note'>{html.escape(note)}</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>\n{rows}\n</tbody></table>"
    )
    return _page(title, body)


def flatten(settings: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, value) of every leaf of nested ``settings`` in their order; an empty
    mapping is a leaf of its own."""
    out: list[tuple[str, Any]] = []
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out += flatten(value, f"{name}.")
        else:
            out.append((name, value))
    return out


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def settings_page(title: str, sections: Mapping[str, Mapping[str, Any]]) -> str:
    """Each of ``sections`` (heading -> nested settings) as a table of dotted keys and values
    (lists and ``null`` as JSON, strings as they are)."""
    parts = []
    for heading, settings in sections.items():
        rows = "\n".join(
            f"<tr><td class='key'>{html.escape(key)}</td><td>{html.escape(_value(value))}</td></tr>"
            for key, value in flatten(settings)
        )
        parts.append(
            f"<h2>{html.escape(heading)}</h2>"
            f"<table><thead><tr><th>key</th><th>value</th></tr></thead><tbody>\n{rows}\n"
            "</tbody></table>"
        )
    return _page(title, "\n".join(parts))


def region_settings(
    config: Mapping[str, Any], region: str, clouds: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """The sections of a region's settings page: its ``regions.<region>`` section (source,
    its settings, e.g. cloudiness and land cover or the folder paths; not how files are
    fetched), the experiments that reconstruct it, and ``clouds``, the settings of the
    ``clouds`` section that apply to this region alone (the detector's, for a source without
    cloud masks; none: no section)."""
    if region not in config["regions"]:
        raise KeyError(f"regions.{region}: no such region; regions: {sorted(config['regions'])}")
    models = {
        "experiments": sorted(experiments_of(config, region)),
        "reference": reference_of(config, region),
    }
    sections = {
        f"regions.{region}": region_result_settings(config, region),
        f"regions.{region}: experiments over it": models,
    }
    if clouds:
        sections["clouds: what the region's cloud masks are detected with"] = dict(clouds)
    return sections


def experiment_settings(config: Mapping[str, Any], experiment: str) -> dict[str, dict[str, Any]]:
    """The sections of an experiment's settings page: its regions and runs, and the train
    section its runs train with (the global one with the experiment's overrides; without
    the keys of how training runs, e.g. workers)."""
    regions = experiment_regions(config, experiment)  # raises for an unknown experiment
    own = dict((config.get("experiments") or {}).get(experiment, {}))
    skip = EXECUTION_KEYS["train"]
    train = {k: v for k, v in run_train(config, experiment).items() if k not in skip}
    return {
        f"experiments.{experiment}": {
            "regions": regions,
            "runs": runs(config, experiment),
            "train overrides": own.get("train") or {},
        },
        "train (as the experiment's runs train; per run train.seed with seeds)": train,
    }


def workflow_settings(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The sections of the settings page of everything else: every config section but the
    regions, experiments and train (each on its own page), without execution keys and
    without the cloud detector (on the pages of the regions it applies to)."""
    out = {}
    for name, value in config.items():
        if name in OWN_PAGES or not isinstance(value, Mapping):
            continue
        skip = EXECUTION_KEYS.get(name, ()) + REGION_KEYS.get(name, ())
        out[name] = {k: v for k, v in value.items() if k not in skip}
    return out


def write_page(page: str, path: str | os.PathLike[str]) -> None:
    """Write an HTML page at ``path`` (via a temporary sibling)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
