"""The stability-study configuration (``gnnff study run CONFIG.yaml``).

Sections (paths relative to the YAML file unless absolute):

data
  dir: folder of the data set (generated there with ``preset``/``seed``/``quick`` when missing).
training
  base: a ``gnnff train`` YAML every model starts from; set: {dotted.key: value} for all models.
families: model families to train (``allegro``, ``allegro-attn``).
variants: name -> {dotted.key: value} (e.g. baseline / decorrelated). Two keys without a dot:
  ``control: ARM`` compares the arm against ARM in the seed-level statistics (default
  ``baseline``); ``pretrained: MODEL`` (a bundled model name or a model file, relative to the
  YAML) makes an arm that is not trained: MODEL runs at every seed (the seed then sets only
  the MD random seeds), e.g. the bundled active-learning model against the model it started
  from.
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
from pathlib import Path
from typing import Any

from ..errors import GNNFFError, did_you_mean
from ..io_utils import load_yaml

DEFAULTS: dict[str, Any] = {
    "data": {"dir": "data/sio2", "preset": "sio2-tersoff", "seed": 0, "quick": False},
    "training": {"base": None, "set": {}},
    "families": ["allegro", "allegro-attn"],
    "variants": {
        "baseline": {"decorrelation.enabled": False},
        "decorrelated": {"decorrelation.enabled": True},
    },
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


ARM_KEYS = ("control", "pretrained")
"""Keys of a variant that are not training-config keys (see the module docstring)."""


class StudyConfigError(GNNFFError, ValueError):
    """A study config that cannot be used."""


def _check(d: dict, allowed: dict, where: str) -> None:
    for key in d:
        if key not in allowed:
            raise StudyConfigError(f"{where}: unknown key {key!r}{did_you_mean(key, allowed)}")


def load_study_config(path: str | Path) -> dict[str, Any]:
    """Read, default-fill and validate a study YAML; resolve its paths."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study config {path} does not exist")
    try:
        raw = load_yaml(path) or {}
    except ValueError as exc:
        raise StudyConfigError(str(exc)) from None
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
    for name, sets in (cfg["variants"] if isinstance(cfg["variants"], dict) else {}).items():
        if isinstance(sets, dict) and "pretrained" in sets:
            sets["pretrained"] = _pretrained_file(sets["pretrained"], base, f"{path}: {name}")
    if not cfg["md"]["systems"]:
        raise StudyConfigError(f"{path}: md.systems is empty: name at least one MD system")
    for name, spec in cfg["md"]["systems"].items():
        if not isinstance(spec, dict) or "starts" not in spec:
            raise StudyConfigError(f"{path}: md.systems.{name} needs a 'starts' file")
        _check(spec, {"starts": 0, "reference": 0}, f"{path}: md.systems.{name}")
    from gnnff.extensions import MODELS

    for fam in cfg["families"]:
        if not isinstance(fam, str) or fam not in MODELS:
            raise StudyConfigError(f"{path}: {MODELS.unknown_message(fam)}")
    try:
        _check_values(cfg)
    except ValueError as exc:
        raise StudyConfigError(f"{path}: {exc}") from None
    cfg["_source"] = str(path.resolve())
    return cfg


def _pretrained_file(value: Any, base: Path, where: str) -> str:
    """A pretrained arm's model as an absolute file path (a path relative to the YAML, or a
    bundled model name)."""
    from gnnff.potentials.bundled import available_pretrained, pretrained_path

    if not isinstance(value, str) or not value:
        raise StudyConfigError(f"{where}: pretrained must be a model file or bundled model name")
    if (base / value).is_file():
        return str((base / value).resolve())
    if value in available_pretrained():
        return str(pretrained_path(value))
    raise StudyConfigError(
        f"{where}: pretrained model {value!r} is neither a file (relative to the YAML) nor a "
        f"bundled model ({', '.join(available_pretrained())})"
    )


def _check_pretrained_family(model: str, families: Any, where: str) -> None:
    """A pretrained arm runs in every family of the study: its model must be of the one."""
    from gnnff.potentials import read_metadata

    family = read_metadata(model)["family"]
    if families != [family]:
        raise StudyConfigError(
            f"{where}: the pretrained model is a {family!r} model, but the study's families are "
            f"{families}: put pretrained arms in a study with families: [{family}]"
        )


def _positive_int(value: Any, where: str, zero_ok: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < (0 if zero_ok else 1):
        kind = "non-negative" if zero_ok else "positive"
        raise StudyConfigError(f"{where} must be a {kind} integer, got {value!r}")


def _check_dotted(keys, where: str) -> None:
    """Dotted training-config keys (``section.key``) must name real fields."""
    from gnnff.training.config import default_config

    defaults = default_config()
    for key in keys:
        sec, _, name = str(key).partition(".")
        if sec not in defaults:
            hint = did_you_mean(sec, defaults)
            raise StudyConfigError(f"{where}: {key!r} names no training-config section{hint}")
        if isinstance(defaults[sec], dict) and sec != "model" and name not in defaults[sec]:
            hint = did_you_mean(key, [f"{sec}.{k}" for k in defaults[sec]])
            raise StudyConfigError(f"{where}: unknown training-config key {key!r}{hint}")


def _check_values(cfg: dict[str, Any]) -> None:
    """Catch bad values when the config is read, not hours later inside a worker (where an
    MD setting error would otherwise be recorded as an unstable run)."""
    from gnnff.calculators.md import MDSettings
    from gnnff.stability import StabilityConfig

    base = cfg["training"]["base"]
    if base is None:
        raise StudyConfigError(
            "training.base is required: the gnnff train YAML every model starts from"
        )
    if not Path(base).is_file():
        raise StudyConfigError(f"training.base {base} does not exist")
    if not isinstance(cfg["training"]["set"] or {}, dict):
        raise StudyConfigError("training.set must be a mapping of dotted.key: value")
    _check_dotted(cfg["training"]["set"] or {}, "training.set")
    if not isinstance(cfg["variants"], dict) or not cfg["variants"]:
        raise StudyConfigError(
            "variants must be a non-empty mapping of name -> {dotted.key: value}"
        )
    for name, sets in cfg["variants"].items():
        if sets is not None and not isinstance(sets, dict):
            raise StudyConfigError(f"variants.{name} must be a mapping of dotted.key: value")
        sets = sets or {}
        training_keys = [k for k in sets if k not in ARM_KEYS]
        _check_dotted(training_keys, f"variants.{name}")
        control = sets.get("control", "baseline")
        if "control" in sets and (
            not isinstance(control, str) or control not in cfg["variants"] or control == name
        ):
            others = ", ".join(v for v in cfg["variants"] if v != name)
            raise StudyConfigError(
                f"variants.{name}.control {control!r} is not another arm ({others})"
            )
        if "pretrained" in sets:
            if training_keys:
                raise StudyConfigError(
                    f"variants.{name} is pretrained: training keys {training_keys} do not apply "
                    "to it"
                )
            _check_pretrained_family(sets["pretrained"], cfg["families"], f"variants.{name}")
    for key in ("families", "seeds", "eval"):
        if not isinstance(cfg[key], list) or not cfg[key]:
            raise StudyConfigError(f"{key} must be a non-empty list")
    for seed in cfg["seeds"]:
        _positive_int(seed, "each seed", zero_ok=True)
    _positive_int(cfg["jobs"], "jobs")
    _positive_int(cfg["threads"], "threads")
    md = cfg["md"]
    _positive_int(md["n_starts"], "md.n_starts")
    if md["dtype"] not in ("float32", "float64"):
        raise StudyConfigError(f"md.dtype must be float32 or float64, got {md['dtype']!r}")
    temps = md["temperatures"]
    if not isinstance(temps, list) or not temps:
        raise StudyConfigError("md.temperatures must be a non-empty list of temperatures (K)")
    try:
        scfg = StabilityConfig.from_dict(dict(md["stability"] or {}))
    except (ValueError, TypeError) as exc:
        raise StudyConfigError(f"md.stability: {exc}") from None
    for t in temps:
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            raise StudyConfigError(f"md.temperatures: {t!r} is not a number (K)")
        try:
            MDSettings(
                ensemble="nvt",
                temperature=float(t),
                time_ps=md["time_ps"],
                dt_fs=md["dt_fs"],
                thermostat=md["thermostat"],
                tau_fs=md["tau_fs"],
                check_interval=scfg.interval,
            ).validate()
        except TypeError as exc:
            raise StudyConfigError(f"md settings: {exc}") from None
        except ValueError as exc:
            raise StudyConfigError(f"md: {exc}") from None
