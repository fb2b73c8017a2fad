"""The ``gnnff stabilize`` configuration (YAML): schema, defaults and validation.

Relative paths follow gnnff's one rule (:func:`gnnff.io_utils.resolve_path`): in the YAML file
they are relative to its folder; given with ``gnnff stabilize --set KEY=VALUE`` (e.g.
``--set train_config=runs/x.yaml``) they are relative to the working directory. ``--set`` takes
top-level keys (``max_rounds=2``) and dotted ones (``explore.time_ps=0.5``,
``select.committee.size=3``); an unknown key is refused with a "did you mean" hint.

Sections::

    train_config: training YAML (``gnnff train`` schema): its data.train/valid are the base
                  set, its model/loss/optim/training sections are used for every retraining
    initial_model: model.pt to start from (null: round 0 trains one from train_config)
    bootstrap:     null, or {preset: NAME or preset.yaml, quick: false, seed: (the loop's)}:
                   start from no data (:mod:`gnnff.active.bootstrap`): the preset samples the
                   structures, ``reference`` labels them into round_000/bootstrap/, round 0
                   trains on its train/valid/test_id splits (train_config's data section is
                   then unused; labels are read from the extxyz files as written). Needs a
                   reference, excludes initial_model. Exploration runs may start from its
                   files: ``structure: "bootstrap:train.extxyz"``
    reference:     {preset: sio2-tersoff}  (labels through LAMMPS, as `gnnff data generate`)
                   or {calculator: "package.module:Class", kwargs: {...}}  (any ASE calculator)
                   or {teacher: sevennet-0, threads: N}  (a foundation-model teacher, needs
                   ``pip install "gnnff[teacher]"``; see gnnff.data.reference)
    explore:       engine (ase | lammps: the bundled NVT input on ``np`` MPI ranks, monitored by
                   ``fix gnnff/stability``), np (1), ensemble (nvt), time_ps (1.0), dt_fs (1.0),
                   check_interval (10), thermostat (langevin), workers (1: runs at once, each
                   in its own process with one torch thread; results do not depend on it),
                   runs: [{structure, index (0), temperature, seed (0)}]
    select:        failure_frames (5 snapshots before each failed check, plus the failing one),
                   max_frames_per_round (50), min_rms_displacement (0.05 A: a frame whose atoms
                   moved less than this, RMS, from a selected frame of the same run is a
                   duplicate), committee (null: off; see below)
    retrain:       mode (finetune | scratch), epochs (10), lr (null = train_config's)
    max_rounds:    5 (0: no retraining; one exploration measures initial_model, e.g. on
                   held-out starts). A resumed loop may change it (``--resume --set
                   max_rounds=N``): it says where the loop stops, not what a round does
    seed:          0

``select.committee`` (optional; the DP-GEN convention, Zhang et al., Comput. Phys. Commun. 253,
107206 (2020))::

    committee: {size: K (>= 2 models: the main model and K-1 members trained with seeds
                + 1000 k), f_lo: eV/A, f_hi: eV/A (0 <= f_lo < f_hi), max_frames (10): committee
                frames selected per round (>= 1), interval: MD steps between deviation checks
                (null = explore.check_interval)}

Every ``interval`` steps of an exploration run the committee's forces on the current frame give
the max force deviation ``dev = max_i sqrt(<|F_i - <F_i>|^2>)`` (eV/A; i over atoms, <> the
mean over the K models, :func:`gnnff.active.committee.max_force_deviation`). Frames with
``f_lo <= dev < f_hi`` are candidates for labelling (after the failure frames, which keep
priority); ``dev >= f_hi`` frames are treated as unphysical and not labelled; ``dev < f_lo``
frames are accurate. The MD is driven by the main model alone (results without a committee are
unchanged). ASE engine only.

Raises :class:`StabilizeConfigError` naming the key and the fix, before any work is done.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from gnnff.io_utils import load_yaml, resolve_path

from .config_schema import (
    BOOTSTRAP_KEYS,
    BOOTSTRAP_PREFIX,
    COMMITTEE_KEYS,
    DEFAULTS,
    ENGINES,
    ENSEMBLES,
    MODES,
    StabilizeConfigError,
    apply_overrides,
    unknown_key,
)

__all__ = [
    "BOOTSTRAP_PREFIX",
    "DEFAULTS",
    "StabilizeConfigError",
    "apply_overrides",
    "load",
    "validate",
]


def _path(value: Any, key: str, base: Path | None) -> str:
    """``value`` as an absolute file path; ``base`` the config file's folder (None: the value
    came from the command line and is relative to the working directory)."""
    if not isinstance(value, str) or not value:
        raise StabilizeConfigError(f"{key} must be a file path, got {value!r}")
    r = resolve_path(value, base)
    if not r.path.is_file():
        raise StabilizeConfigError(r.missing(key, "fix the path or create the file"))
    return str(r.path)


def _number(sec: str, key: str, value: Any, lo: float, integer: bool = False) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or value < lo:
        kind = "an integer" if integer else "a number"
        raise StabilizeConfigError(f"{sec}.{key} must be {kind} >= {lo}, got {value!r}")
    return value


def _reference(ref: Any) -> dict[str, Any]:
    """The ``reference`` section, checked by :func:`gnnff.data.reference.validate_reference`
    (preset, ASE calculator or foundation-model teacher)."""
    from gnnff.data.reference import ReferenceSpecError, validate_reference

    try:
        return validate_reference(ref)
    except ReferenceSpecError as exc:
        raise StabilizeConfigError(str(exc)) from None


def _preset_arg(name: Any, base: Path | None, key: str) -> str:
    """A preset given by name (kept) or as a YAML file (resolved by gnnff's path rule: relative
    to the config file's folder, or to the working directory for ``--set``)."""
    if not isinstance(name, str) or not name:
        raise StabilizeConfigError(f"{key} must be a preset name or file, got {name!r}")
    as_file = resolve_path(name, base).path
    if as_file.is_file():
        return str(as_file)
    if name.endswith((".yaml", ".yml")) or "/" in name:
        raise StabilizeConfigError(
            f"{key}: {as_file} not found; fix the path (relative to the config file's folder) "
            "or name a bundled preset (gnnff data presets)"
        )
    return name


def _bootstrap(cfg: dict[str, Any], base: Path | None) -> dict[str, Any] | None:
    """The ``bootstrap`` section's shape (None: off); the preset itself (species, splits) is
    checked by :func:`gnnff.active.bootstrap.check_preset` when the loop is set up."""
    bs = cfg["bootstrap"]
    if bs is None:
        return None
    if not isinstance(bs, dict) or "preset" not in bs:
        raise StabilizeConfigError(
            "bootstrap must be null or a mapping {preset: NAME or preset.yaml, quick: false, "
            "seed: N}"
        )
    bad = set(bs) - set(BOOTSTRAP_KEYS)
    if bad:
        raise unknown_key("bootstrap.", bad, BOOTSTRAP_KEYS)
    if cfg["initial_model"] is not None:
        raise StabilizeConfigError(
            "bootstrap and initial_model exclude each other: the bootstrap trains round 0's "
            "model from nothing; drop initial_model, or drop bootstrap to start from the model"
        )
    name = _preset_arg(bs["preset"], base, "bootstrap.preset")
    quick = bs.get("quick", False)
    if not isinstance(quick, bool):
        raise StabilizeConfigError(f"bootstrap.quick must be true or false, got {quick!r}")
    seed = bs.get("seed", cfg["seed"])
    _number("bootstrap", "seed", seed, 0, integer=True)
    return {"preset": name, "quick": quick, "seed": seed}


def _committee(com: Any, ex: dict[str, Any]) -> dict[str, Any] | None:
    """The validated ``select.committee`` (None: off); ``ex`` the validated explore section."""
    if com is None:
        return None
    sec = "select.committee"
    if not isinstance(com, dict):
        raise StabilizeConfigError(
            f"{sec} must be null (off) or a mapping {{size, f_lo, f_hi, max_frames, interval}}"
        )
    bad = set(com) - set(COMMITTEE_KEYS)
    if bad:
        raise unknown_key(f"{sec}.", bad, COMMITTEE_KEYS)
    missing = [k for k in ("size", "f_lo", "f_hi") if k not in com]
    if missing:
        raise StabilizeConfigError(
            f"{sec} needs {missing}: size (models, >= 2) and the force-deviation thresholds "
            "f_lo < f_hi in eV/A"
        )
    out = {
        "size": _number(sec, "size", com["size"], 2, integer=True),
        "f_lo": float(_number(sec, "f_lo", com["f_lo"], 0.0)),
        "f_hi": float(_number(sec, "f_hi", com["f_hi"], 0.0)),
        "max_frames": _number(sec, "max_frames", com.get("max_frames", 10), 1, integer=True),
        "interval": com.get("interval"),
    }
    if out["f_lo"] >= out["f_hi"]:
        raise StabilizeConfigError(
            f"{sec}: f_lo ({out['f_lo']} eV/A) must be below f_hi ({out['f_hi']} eV/A); "
            "candidates are frames with f_lo <= max force deviation < f_hi"
        )
    if out["interval"] is None:
        out["interval"] = ex["check_interval"]
    _number(sec, "interval", out["interval"], 1, integer=True)
    if ex["engine"] != "ase":
        raise StabilizeConfigError(
            f"{sec} needs explore.engine ase (the committee's forces are evaluated in the ASE "
            f"MD); engine {ex['engine']!r} cannot run one: use engine ase or set "
            f"{sec} null"
        )
    return out


def validate(
    raw: dict[str, Any],
    base: Path | None,
    cli_keys: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Fill defaults, check every field, resolve paths; returns a new dict.

    ``base``: the config file's folder (None: relative paths are relative to the working
    directory); ``cli_keys``: dotted keys given with ``--set``, whose paths are relative to the
    working directory."""
    if not isinstance(raw, dict):
        raise StabilizeConfigError("the stabilize config must be a YAML mapping")

    def base_for(key: str) -> Path | None:  # --set explore={...} covers explore.runs too
        parts = key.split(".")
        given = any(".".join(parts[: n + 1]) in cli_keys for n in range(len(parts)))
        return None if given else base

    cfg = copy.deepcopy(DEFAULTS)
    for key, value in raw.items():
        if key not in DEFAULTS:
            raise unknown_key("", [key], DEFAULTS)
        if isinstance(DEFAULTS[key], dict):
            if not isinstance(value, dict):
                raise StabilizeConfigError(f"{key} must be a mapping")
            bad = set(value) - set(DEFAULTS[key])
            if bad:
                raise unknown_key(f"{key}.", bad, DEFAULTS[key])
            cfg[key].update(copy.deepcopy(value))
        else:
            cfg[key] = copy.deepcopy(value)
    cfg["train_config"] = _path(cfg["train_config"], "train_config", base_for("train_config"))
    if cfg["initial_model"] is not None:
        cfg["initial_model"] = _path(
            cfg["initial_model"], "initial_model", base_for("initial_model")
        )
    if cfg["bootstrap"] is not None and cfg["reference"] is None:
        raise StabilizeConfigError(
            "bootstrap needs a reference to label its frames, e.g. reference: "
            "{teacher: sevennet-0} (or {preset: NAME}, or {calculator: ...})"
        )
    if isinstance(cfg["reference"], dict) and "preset" in cfg["reference"]:
        cfg["reference"]["preset"] = _preset_arg(
            cfg["reference"]["preset"], base_for("reference.preset"), "reference.preset"
        )
    cfg["reference"] = _reference(cfg["reference"])
    _number("", "seed", cfg["seed"], 0, integer=True)
    cfg["bootstrap"] = _bootstrap(cfg, base_for("bootstrap.preset"))
    ex = cfg["explore"]
    if ex["engine"] not in ENGINES:
        raise StabilizeConfigError(f"explore.engine {ex['engine']!r}: valid are {ENGINES}")
    _number("explore", "np", ex["np"], 1, integer=True)
    _number("explore", "workers", ex["workers"], 1, integer=True)
    if ex["engine"] == "lammps" and (
        ex["ensemble"] != "nvt" or ex["thermostat"] != "langevin" or ex["dt_fs"] != 1.0
    ):
        raise StabilizeConfigError(
            "explore.engine lammps runs the bundled NVT input (Langevin, 1 fs steps, "
            "gnnff/lammps/templates/in.nvt): use ensemble nvt, thermostat langevin, dt_fs 1.0, "
            "or engine ase"
        )
    if ex["ensemble"] not in ENSEMBLES:
        raise StabilizeConfigError(f"explore.ensemble must be one of {ENSEMBLES}")
    _number("explore", "time_ps", ex["time_ps"], 1e-6)
    _number("explore", "dt_fs", ex["dt_fs"], 1e-6)
    _number("explore", "check_interval", ex["check_interval"], 1, integer=True)
    if not isinstance(ex["runs"], list) or not ex["runs"]:
        raise StabilizeConfigError(
            "explore.runs must list at least one run: {structure: FILE, temperature: K}"
        )
    runs = []
    for k, run in enumerate(ex["runs"]):
        if not isinstance(run, dict) or "structure" not in run or "temperature" not in run:
            raise StabilizeConfigError(f"explore.runs[{k}] needs structure and temperature")
        bad = set(run) - {"structure", "index", "temperature", "seed"}
        if bad:
            raise StabilizeConfigError(f"explore.runs[{k}]: unknown keys {sorted(bad)}")
        structure = run["structure"]
        if isinstance(structure, str) and structure.startswith(BOOTSTRAP_PREFIX):
            if cfg["bootstrap"] is None:
                raise StabilizeConfigError(
                    f"explore.runs[{k}].structure {structure!r} names a bootstrap file, but "
                    "there is no bootstrap section; give the path of a structure file"
                )
        else:
            structure = _path(structure, f"explore.runs[{k}].structure", base_for("explore.runs"))
        runs.append(
            {
                "structure": structure,
                "index": _number(
                    "explore.runs", "index", run.get("index", 0), -(10**9), integer=True
                ),
                "temperature": float(
                    _number("explore.runs", "temperature", run["temperature"], 0.0)
                ),
                "seed": _number("explore.runs", "seed", run.get("seed", 0), 0, integer=True),
            }
        )
    ex["runs"] = runs
    se = cfg["select"]
    _number("select", "failure_frames", se["failure_frames"], 0, integer=True)
    _number("select", "max_frames_per_round", se["max_frames_per_round"], 1, integer=True)
    _number("select", "min_rms_displacement", se["min_rms_displacement"], 0.0)
    se["committee"] = _committee(se["committee"], ex)
    rt = cfg["retrain"]
    if rt["mode"] not in MODES:
        raise StabilizeConfigError(f"retrain.mode must be one of {MODES}, got {rt['mode']!r}")
    _number("retrain", "epochs", rt["epochs"], 1, integer=True)
    if rt["lr"] is not None:
        _number("retrain", "lr", rt["lr"], 0.0)
    _number("", "max_rounds", cfg["max_rounds"], 0, integer=True)
    _number("", "seed", cfg["seed"], 0, integer=True)
    return cfg


def load(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a stabilize YAML file, apply ``--set`` overrides (:func:`apply_overrides`),
    validate."""
    path = Path(path)
    if not path.is_file():
        raise StabilizeConfigError(f"config file not found: {path}")
    try:
        raw = load_yaml(path) or {}
    except ValueError as exc:
        raise StabilizeConfigError(str(exc)) from None
    raw = apply_overrides(raw, overrides)
    cli_keys = {text.partition("=")[0].strip() for text in overrides or []}
    return validate(raw, path.parent, cli_keys)
