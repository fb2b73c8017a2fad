"""The ``gnnff stabilize`` config's keys, defaults and error type, and ``--set KEY=VALUE``
overrides checked against those keys (the sections are described in :mod:`gnnff.active.config`,
which validates a whole config)."""

from __future__ import annotations

import copy
from typing import Any

from gnnff.errors import GNNFFError, did_you_mean
from gnnff.io_utils import yaml_value

ENGINES = ("ase", "lammps")
ENSEMBLES = ("nvt", "nve")
MODES = ("finetune", "scratch")

DEFAULTS: dict[str, Any] = {
    "train_config": None,
    "initial_model": None,
    "bootstrap": None,
    "reference": None,
    "explore": {
        "engine": "ase",
        "ensemble": "nvt",
        "time_ps": 1.0,
        "dt_fs": 1.0,
        "check_interval": 10,
        "thermostat": "langevin",
        "np": 1,
        "workers": 1,
        "runs": [],
    },
    "select": {
        "failure_frames": 5,
        "max_frames_per_round": 50,
        "min_rms_displacement": 0.05,
        "committee": None,
    },
    "retrain": {"mode": "finetune", "epochs": 10, "lr": None},
    "max_rounds": 5,
    "seed": 0,
}


class StabilizeConfigError(GNNFFError, ValueError):
    """A stabilize config that cannot be used; the message names the key and the fix."""


def unknown_key(where: str, bad: Any, valid: Any) -> StabilizeConfigError:
    bad = sorted(bad)
    return StabilizeConfigError(
        f"unknown key {where}{bad[0]}{did_you_mean(bad[0], valid)} (valid: {', '.join(valid)})"
    )


COMMITTEE_KEYS = ("size", "f_lo", "f_hi", "max_frames", "interval")
BOOTSTRAP_KEYS = ("preset", "quick", "seed")

BOOTSTRAP_PREFIX = "bootstrap:"  # an exploration start from the bootstrap data set


def apply_overrides(raw: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """``--set KEY=VALUE`` overrides (VALUE parsed as YAML) applied to a raw config; each key
    is checked against the schema first (StabilizeConfigError with a "did you mean")."""
    raw = copy.deepcopy(raw)
    for text in overrides or []:
        key, sep, value = text.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise StabilizeConfigError(
                f"--set expects KEY=VALUE (e.g. max_rounds=2 or explore.time_ps=0.5), got {text!r}"
            )
        schema: Any = DEFAULTS
        for depth, part in enumerate(parts):
            where = ".".join(parts[:depth]) + ("." if depth else "")
            if not isinstance(schema, dict):
                raise StabilizeConfigError(f"--set {text!r}: {where[:-1]} is not a section")
            if part not in schema:
                raise StabilizeConfigError(
                    f"--set {text!r}: " + str(unknown_key(where, [part], schema))
                )
            schema = schema[part]
            if where + part == "select.committee":
                schema = dict.fromkeys(COMMITTEE_KEYS)
            elif where + part == "bootstrap":
                schema = dict.fromkeys(BOOTSTRAP_KEYS)
        node = raw
        for part in parts[:-1]:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
            if not isinstance(node, dict):
                raise StabilizeConfigError(f"--set {text!r}: {part!r} is not a mapping")
        node[parts[-1]] = yaml_value(value)
    return raw
