"""Write docs/config.md from workflow/schemas/config.schema.yaml (the single source).

python docs/make_config_reference.py          # rewrite docs/config.md
python docs/make_config_reference.py --check  # exit 1 if docs/config.md is stale
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
OUT = REPO / "docs/config.md"


def _type(node: dict[str, Any]) -> str:
    if "enum" in node:
        return " \\| ".join(f"`{json.dumps(v) if v is None else v}`" for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    if "oneOf" in node or "anyOf" in node:
        return " or ".join(_type(n) for n in node.get("oneOf", node.get("anyOf", [])))
    t = node.get("type", "object")
    return " or ".join(t) if isinstance(t, list) else t


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" not in node:
        return node
    target = defs[node["$ref"].rsplit("/", 1)[-1]]
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}


def _rows(node: dict[str, Any], prefix: str, defs: dict[str, Any]) -> list[str]:
    node = _resolve(node, defs)
    rows = []
    for key, sub in node.get("properties", {}).items():
        sub = _resolve(sub, defs)
        name = f"{prefix}{key}"
        if "default" in sub and not ("properties" in sub and sub["default"] == {}):
            default = f"`{json.dumps(sub['default'])}`"
        else:
            default = "required" if key in node.get("required", []) else ""
        desc = " ".join(str(sub.get("description", "")).split())
        rows.append(f"| `{name}` | {_type(sub)} | {default} | {desc} |")
        if "properties" in sub:
            rows += _rows(sub, f"{name}.", defs)
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict):
            rows += _rows(extra, f"{name}.<name>.", defs)
    return rows


def render() -> str:
    schema = yaml.safe_load(SCHEMA.read_text())
    defs = schema.get("$defs", {})
    lines = [
        "# Configuration reference",
        "",
        "Generated from `workflow/schemas/config.schema.yaml` by",
        "`python docs/make_config_reference.py`; do not edit by hand. Unknown keys are errors.",
        "`<name>` stands for a name you choose (a region or an experiment).",
        "",
        " ".join(str(schema.get("description", "")).split()),
        "",
        "| key | type | default | description |",
        "| --- | --- | --- | --- |",
        *_rows(schema, "", defs),
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is stale: run python docs/make_config_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
