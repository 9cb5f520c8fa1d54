"""Config files read strictly, before anything walks them.

A key given twice (YAML and JSON keep the last), a file over :data:`MAX_CONFIG_BYTES` or one
whose aliases expand to more than :data:`MAX_CONFIG_VALUES` values (a "billion laughs") raises
ConfigError naming the file (and the key and line).  The workflow re-reads each config file
Snakemake loaded with :func:`load_config_file`; :func:`cloudfree.config.schema` reads the
schema with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import yaml

from cloudfree.errors import ConfigError

# A config is a few kilobytes: anything near these is not one.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_VALUES = 100_000  # scalars, lists and mappings, every alias expanded
_MERGE_TAG = "tag:yaml.org,2002:merge"


class StrictLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a mapping key given twice (PyYAML keeps the last)."""

    def __init__(self, stream: str, name: str) -> None:
        super().__init__(stream)
        self.name = name

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in first:
                    raise ConfigError(
                        f"{self.name}: line {line}: duplicate key {key!r} "
                        f"(first on line {first[key]}); give each key once"
                    )
                first[key] = line
            except TypeError:  # an unhashable key: SafeLoader's own error names it
                break
        return super().construct_mapping(node, deep=deep)


def _check_nodes(root: yaml.Node, name: str) -> None:
    """Refuse a duplicate key (naming its dotted key and line), an alias to itself and a
    document of more than :data:`MAX_CONFIG_VALUES` values once aliases are expanded.

    Each node is visited once (an alias is the node it refers to), so a billion laughs
    costs its size on disk, not its expansion."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, path: str) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_nodes:
            line = node.start_mark.line + 1
            raise ConfigError(f"{name}: line {line}: {path or 'the config'} contains itself")
        open_nodes.add(id(node))
        total = 1
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key_node, value in node.value:
                if key_node.tag == _MERGE_TAG:
                    total += size(value, path)
                    continue
                label = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
                dotted = f"{path}.{label}" if path else str(label)
                line = key_node.start_mark.line + 1
                if isinstance(key_node, yaml.ScalarNode):
                    if (key_node.tag, label) in first:
                        raise ConfigError(
                            f"{name}: line {line}: duplicate key {dotted!r} "
                            f"(first on line {first[key_node.tag, label]}); give each key once"
                        )
                    first[key_node.tag, label] = line
                total += size(key_node, dotted) + size(value, dotted)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                total += size(item, f"{path}[{i}]")
        open_nodes.discard(id(node))
        if total > MAX_CONFIG_VALUES:
            raise ConfigError(
                f"{name}: more than {MAX_CONFIG_VALUES} values once its aliases are expanded "
                f"(at {path or 'the top level'}); a config holds a few hundred"
            )
        sizes[id(node)] = total
        return total

    size(root, "")


def _refuse_duplicate_pairs(name: str) -> Callable[[list[tuple[str, Any]]], dict[str, Any]]:
    """A ``json`` object hook that refuses a key given twice (``json`` keeps the last)."""

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise ConfigError(f"{name}: duplicate key {key!r}; give each key once")
            out[key] = value
        return out

    return pairs


def load_config_text(text: str, name: str) -> Any:
    """A config document (JSON or YAML, as Snakemake reads them) read strictly; ``name``
    (the file) is named in every error."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{name}: larger than {MAX_CONFIG_BYTES} bytes; a config is a few kB")
    try:  # Snakemake tries JSON first
        return json.loads(text, object_pairs_hook=_refuse_duplicate_pairs(name))
    except (ValueError, RecursionError):
        pass
    loader = StrictLoader(text, name)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, name)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{name}: nested too deeply to be a config") from None
    finally:
        loader.dispose()


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A config file (a mapping at its top level) read strictly: a duplicate key, a file
    over :data:`MAX_CONFIG_BYTES` or an alias bomb raises ConfigError naming the file."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes; a config is a few kB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    config = load_config_text(text, str(path))
    if not isinstance(config, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys at its top level")
    return config
