"""The stability-study configuration (``gnnff study run CONFIG.yaml``).

Sections (paths relative to the YAML file unless absolute):

data
  dir: folder of the data set (generated there with ``preset``/``seed``/``quick`` when missing).
training
  base: a ``gnnff train`` YAML every model starts from; set: {dotted.key: value} for all models.
families: model families to train (``allegro``, ``allegro-attn``).
variants: name -> {dotted.key: value} (e.g. baseline / decorrelated).
seeds: training seeds.
md
  systems: name -> {starts: extxyz of starting structures (relative to data.dir, ``{T}`` is
  replaced by the temperature), reference: extxyz of reference-potential MD at the state point
  for the RDF criterion (``{T}`` likewise; optional)}; n_starts; temperatures (K); time_ps;
  dt_fs; thermostat (langevin | bussi | nose-hoover); tau_fs; dtype (float32 | float64);
  stability: StabilityConfig fields.
eval: extxyz files (relative to data.dir) on which every model's MAE and L_corr are measured.
jobs: worker processes (each uses ``threads`` torch threads).
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any

import yaml

DEFAULTS: dict[str, Any] = {
    "data": {"dir": "data/sio2", "preset": "sio2-tersoff", "seed": 0, "quick": False},
    "training": {"base": None, "set": {}},
    "families": ["allegro", "allegro-attn"],
    "variants": {"baseline": {"decorrelation.enabled": False},
                 "decorrelated": {"decorrelation.enabled": True}},
    "seeds": [0, 1, 2],
    "md": {
        "systems": {},
        "n_starts": 3,
        "temperatures": [1000.0],
        "time_ps": 10.0,
        "dt_fs": 1.0,
        "thermostat": "langevin",
        "tau_fs": 100.0,
        "dtype": "float64",
        "stability": {},
    },
    "eval": ["test_id.extxyz"],
    "jobs": 2,
    "threads": 1,
}


class StudyConfigError(ValueError):
    """A study config that cannot be used."""


def _check(d: dict, allowed: dict, where: str) -> None:
    for key in d:
        if key not in allowed:
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise StudyConfigError(f"{where}: unknown key {key!r}{hint}")


def load_study_config(path: str | Path) -> dict[str, Any]:
    """Read, default-fill and validate a study YAML; resolve its paths."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study config {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise StudyConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise StudyConfigError(f"{path}: a study config must be a YAML mapping")
    _check(raw, DEFAULTS, str(path))
    cfg = copy.deepcopy(DEFAULTS)
    for key, value in raw.items():
        if isinstance(DEFAULTS[key], dict) and key not in ("variants",):
            if not isinstance(value, dict):
                raise StudyConfigError(f"{path}: {key} must be a mapping")
            _check(value, DEFAULTS[key] if key != "md" else DEFAULTS["md"], f"{path}: {key}")
            cfg[key].update(value)
        else:
            cfg[key] = value
    base = path.parent
    cfg["data"]["dir"] = str((base / cfg["data"]["dir"]).resolve())
    if cfg["training"]["base"]:
        cfg["training"]["base"] = str((base / cfg["training"]["base"]).resolve())
    if not cfg["md"]["systems"]:
        raise StudyConfigError(f"{path}: md.systems is empty: name at least one MD system")
    for name, spec in cfg["md"]["systems"].items():
        if not isinstance(spec, dict) or "starts" not in spec:
            raise StudyConfigError(f"{path}: md.systems.{name} needs a 'starts' file")
        _check(spec, {"starts": 0, "reference": 0}, f"{path}: md.systems.{name}")
    from gnnff.potentials.config import FAMILIES

    for fam in cfg["families"]:
        if fam not in FAMILIES:
            raise StudyConfigError(f"{path}: unknown family {fam!r} (valid: {FAMILIES})")
    cfg["_source"] = str(path.resolve())
    return cfg
