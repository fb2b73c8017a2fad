"""``--set section.key=value`` overrides of a training config."""

from __future__ import annotations

import copy
from typing import Any

from ..io_utils import yaml_value
from .config_schema import ConfigError

__all__ = ["apply_overrides", "override_keys", "parse_override"]


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"section.key=value"`` -> (["section", "key"], YAML-parsed value)."""
    if "=" not in text:
        raise ConfigError(f"--set expects section.key=value, got {text!r}")
    key, value = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set key must look like section.key, got {key!r}")
    return parts, yaml_value(value)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a raw (unvalidated) config dict."""
    raw = copy.deepcopy(raw)
    for text in overrides or []:
        parts, value = parse_override(text)
        node = raw
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {p!r} is not a section")
        node[parts[-1]] = value
    return raw


def override_keys(overrides: list[str] | None) -> set[str]:
    """The dotted keys (``"data.train"``) that ``--set`` overrides name."""
    return {".".join(parse_override(text)[0]) for text in overrides or []}
