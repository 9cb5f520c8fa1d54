"""How the command line shapes a run's config, before it is validated.

- ``--config`` values: Snakemake reads ``--config key=value`` with PyYAML's ``BaseLoader``
  below the top level, so ``train={"steps": 20}`` arrives as ``{"steps": "20"}``.
  :func:`coerce_overrides` turns such a string back into the number, boolean or null it
  spells (as YAML spells them), but only where the schema allows that type at
  that key and does not allow a string, and only for the values given on the command line:
  a string in a config file stays a string and fails validation as before.
- A partial ``--configfile``: a top-level ``base: default`` puts the file over the embedded
  default (``config/config.yaml``): mappings merged key by key, lists and scalars replaced.
  :func:`apply_base` does the merge and drops ``base``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from cloudfree.configfile import load_config_file
from cloudfree.errors import ConfigError

BASES = ("default",)


def _branches(node: Mapping[str, Any], defs: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """``node`` and every schema it combines ($ref, allOf/anyOf/oneOf, if/then/else)."""
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        target = defs.get(ref.removeprefix("#/$defs/"))
        if isinstance(target, Mapping):
            yield from _branches(target, defs)
    yield node
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in node.get(key, ()):
            if isinstance(sub, Mapping):
                yield from _branches(sub, defs)
    for key in ("then", "else"):
        sub = node.get(key)
        if isinstance(sub, Mapping):
            yield from _branches(sub, defs)


def _children(
    nodes: list[Mapping[str, Any]], key: str | int, defs: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    """The schemas that may apply to ``key`` (a mapping key or a list index) of a value
    that ``nodes`` describe."""
    out: list[Mapping[str, Any]] = []
    for node in nodes:
        for branch in _branches(node, defs):
            if isinstance(key, int):
                sub = branch.get("items")
            else:
                sub = branch.get("properties", {}).get(key)
                if sub is None:
                    sub = branch.get("additionalProperties")
            if isinstance(sub, Mapping):
                out.append(sub)
    return out


def _types(nodes: list[Mapping[str, Any]], defs: Mapping[str, Any]) -> set[str]:
    types: set[str] = set()
    for node in nodes:
        for branch in _branches(node, defs):
            declared = branch.get("type")
            if isinstance(declared, str):
                types.add(declared)
            elif isinstance(declared, list):
                types.update(t for t in declared if isinstance(t, str))
    return types


_INTEGER = re.compile(r"[-+]?[0-9]+")
_NUMBER = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_WORDS: dict[str, tuple[str, Any]] = {
    "true": ("boolean", True), "false": ("boolean", False),
    "null": ("null", None), "~": ("null", None),
}  # fmt: skip


def _coerced(text: str, types: set[str]) -> Any:
    """``text`` as the number, boolean or null it spells (YAML's spelling, exponents without
    a dot included) when the schema allows that type there and no string."""
    if "string" in types or not types:
        return text
    word = _WORDS.get(text.strip().lower())
    if word is not None:
        return word[1] if word[0] in types else text
    if _INTEGER.fullmatch(text.strip()) and types & {"integer", "number"}:
        return int(text)
    if _NUMBER.fullmatch(text.strip()) and "number" in types:
        return float(text)
    return text


def _walk(
    target: MutableMapping[Any, Any] | list[Any],
    given: Any,
    nodes: list[Mapping[str, Any]],
    defs: Mapping[str, Any],
) -> None:
    keys = range(len(given)) if isinstance(given, list) else list(given)
    for key in keys:
        try:
            current = target[key]
        except (KeyError, IndexError, TypeError):
            continue
        value = given[key]
        sub = _children(nodes, key, defs)
        if isinstance(value, str) and current == value:
            target[key] = _coerced(value, _types(sub, defs))
        elif isinstance(value, Mapping) and isinstance(current, MutableMapping):
            _walk(current, value, sub, defs)
        elif isinstance(value, list) and isinstance(current, list):
            _walk(current, value, sub, defs)


def coerce_overrides(
    config: MutableMapping[str, Any], overrides: Mapping[str, Any], schema: Mapping[str, Any]
) -> None:
    """Coerce, in place, the ``config`` values given on the command line (``overrides``,
    Snakemake's ``--config`` dict) that are strings where ``schema`` wants a number, a
    boolean or null and spell one."""
    _walk(config, overrides, [schema], schema.get("$defs", {}))


def _merged(base: Any, over: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(over, Mapping):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merged(base[key], value) if key in base else copy.deepcopy(value)
        return out
    return copy.deepcopy(over)


def apply_base(config: MutableMapping[str, Any], default_file: Path) -> bool:
    """Put ``config`` over ``default_file`` when it says ``base: default``; True if it did.

    ``base`` is dropped; any other value is a ConfigError naming the key and the allowed
    values."""
    if "base" not in config:
        return False
    base = config["base"]
    if base not in BASES:
        raise ConfigError(
            f"base: {base!r} is not a known base; allowed: {', '.join(BASES)} (the embedded "
            f"default, {default_file.name}), or leave the key out for a config of its own"
        )
    merged = _merged(load_config_file(default_file), dict(config))
    merged.pop("base", None)
    config.clear()
    config.update(merged)
    return True
