"""The training configuration (YAML) for ``gnnff train``: schema, defaults, validation.

This module reads and validates a config; the defaults are in :mod:`.config_schema`, the
checks of single values in :mod:`.config_checks`, ``--set`` overrides in
:mod:`.config_overrides` (every public name is importable from here).

Every field has a default; only ``data.train`` and ``data.valid`` are required. Unknown keys
are errors (with a "did you mean" hint).

Relative paths (``data.train``/``valid``/``test``/``cache``) follow gnnff's one rule
(:func:`gnnff.io_utils.resolve_path`): a path written in the YAML file is relative to the YAML
file's folder; a path given on the command line (``--set data.train=PATH``) is relative to the
current working directory. A missing file raises :class:`ConfigError` naming the path as given,
the rule applied and the absolute path. Sections and fields:

data
  train, valid (required), test (optional): any file ``ase.io.read`` reads (extxyz, traj,
  vasprun.xml, OUTCAR, ...; ``file@index`` selects frames, e.g. ``vasprun.xml@:``).
  energy_key, forces_key, stress_key, virial_key (null): where the labels are, e.g.
  ``REF_energy`` in ``atoms.info`` / ``REF_forces`` in ``atoms.arrays``; null = the frames'
  calculator results (virial: not read). Units eV, eV/A, eV/A^3 (ASE sign), virial eV; see
  :mod:`gnnff.training.labels`. A frame may lack some labels: it adds no term for those.
  cache (null): null = read every split into memory (ASE, one ``Structure`` per frame); a
  folder (relative to the config file) = keep each split as flat numpy arrays in
  ``<folder>/<split>/`` (memory-mapped, :mod:`gnnff.training.edge_cache`), built on the first
  run and rebuilt, with a log line saying why, when the data file, its frame selection,
  cutoff, species, label keys or the cache format change; ``true`` = the folder
  ``<training file>.gnnff-cache`` next to the training file. Results are identical either way.
model
  passed to ``gnnff.potentials.build_model`` (``family`` default "allegro"; the family owns
  its keys beyond the common ones, see :mod:`gnnff.potentials.config`); ``species`` may be
  omitted and is then inferred from the training data (sorted by atomic number). ``e0s``:
  per-element reference energies (eV) that the per-species energy shift is pinned to:
  "average" (default: least squares over the training energies), "isolated_atoms" (from
  single-atom frames of the training file) or a mapping {symbol: eV}.
loss
  energy_weight (1.0, on the per-atom energy MSE, eV^2/atom^2), forces_weight (1.0, force
  component MSE, eV^2/A^2), stress_weight (0.0 = off; stress component MSE, (eV/A^3)^2).
decorrelation
  enabled (false), variant ("residual" | "post_activation" | "per_pair" | "tensor", which
  features the loss acts on, see ``gnnff.training.decorrelation``), layers ("all" or a list of
  0-based layer indices), max_edges ("auto", random edge subsample per batch: an
  integer, null = all edges, or "auto" = 4096 (32 / C)^2 clamped to [512, 4096] for the widest
  decorrelated layer's C channels, the Gram cost of 4096 x 32 channels: 4096 for the residual
  stream and tensor norms, 1024 for the 64 hidden units of post_activation / per_pair; before
  "auto" the default was 4096; see ``gnnff.training.decorrelation.auto_max_edges``),
  scheduler ("cosine" | "constant" | "adaptive" | "decay"), lambda_max (0.05),
  cosine: warmup_epochs (2.0) or warmup_steps (overrides when set), after_warmup ("hold" |
  "anneal"), anneal_epochs (null = to the end), lambda_end (0.0);
  adaptive: target_fraction (0.1), lambda_min (0.0), momentum (0.1), lambda_init (0.0);
  decay: lambda_max at step 0 decaying to lambda_end, decay_shape ("cosine" | "exponential"),
  decay_epochs (cosine: its length, exponential: the e-folding time; null = the whole run,
  resp. a fifth of it); scheduler_options ({}): a plug-in scheduler's own settings, declared
  by its factory (``options``: the keys and defaults, ``validate_options``: their check).
optim
  AdamW: lr (2e-3), weight_decay (0.0); lr_schedule ("plateau" | "cosine" | "none"),
  plateau_factor (0.5), plateau_patience (5 epochs), min_lr (1e-5).
training
  epochs (100), batch_size (4 structures), valid_batch_size (16), seed (0), device ("cpu"),
  dtype ("float32" | "float64"), ema_decay (null = off, e.g. 0.99), early_stopping_patience
  (null = off, epochs without valid-loss improvement), grad_clip (10.0 max grad norm, null = off),
  num_threads (null = torch default), export ("best" | "last" weights), progress (true: tqdm).

The decorrelation loss and the schedulers are this project's own definitions; see
``gnnff.training.decorrelation`` and ``gnnff.training.schedulers``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ..errors import did_you_mean
from ..io_utils import load_yaml, resolve_path
from .config_checks import (
    check_cache,
    check_choice,
    check_number,
    check_scheduler,
    check_scheduler_options,
    check_variant_fits_model,
)
from .config_overrides import apply_overrides, override_keys, parse_override
from .config_schema import DECORRELATION_VARIANTS, DEFAULTS, ConfigError, default_config

__all__ = [
    "DECORRELATION_VARIANTS",
    "DEFAULTS",
    "ConfigError",
    "apply_overrides",
    "default_config",
    "load_config",
    "override_keys",
    "parse_override",
    "validate_config",
]


def validate_config(
    raw: dict[str, Any] | None,
    base_dir: str | Path | None = None,
    cli_keys: set[str] | frozenset[str] = frozenset(),
) -> dict:
    """Fill defaults, check every field, resolve data paths. Returns a new dict.

    ``base_dir``: the folder of the YAML file the config came from (None: the config was not
    read from a file; relative paths are then relative to the working directory).
    ``cli_keys``: dotted keys set on the command line (``--set``), whose relative paths are
    relative to the working directory whatever ``base_dir`` is.

    Raises :class:`ConfigError` on unknown keys, wrong types or values, missing data files.
    The ``model`` section is checked by ``gnnff.potentials`` once species are known.
    """
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError("the training config must be a YAML mapping of sections")
    cfg = default_config()
    for sec, body in raw.items():
        if sec not in DEFAULTS:
            raise ConfigError(f"unknown config section {sec!r}{did_you_mean(sec, DEFAULTS)}")
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ConfigError(f"config section {sec!r} must be a mapping, got {body!r}")
        if sec == "model":
            cfg["model"] = copy.deepcopy(body)
            continue
        for key, value in body.items():
            if key not in DEFAULTS[sec]:
                raise ConfigError(
                    f"unknown key {sec}.{key}{did_you_mean(key, DEFAULTS[sec])} "
                    f"(valid keys: {', '.join(DEFAULTS[sec])})"
                )
            cfg[sec][key] = copy.deepcopy(value)

    def base_for(key: str) -> str | Path | None:
        return None if key in cli_keys else base_dir

    d = cfg["data"]
    for key in ("train", "valid", "test"):
        if d[key] is None:
            if key != "test":
                raise ConfigError(
                    f"data.{key} is required: the path of a structure file "
                    "(extxyz or any format ase.io.read reads)"
                )
            continue
        r = resolve_path(str(d[key]), base_for(f"data.{key}"))
        p, index = r.path, None
        if not p.exists() and "@" in p.name:  # ASE's file@index
            name, index = p.name.rsplit("@", 1)
            p = p.with_name(name)
        if not p.is_file():
            raise ConfigError(
                r.missing(
                    f"data.{key}",
                    f"create it (e.g. `gnnff data generate --preset PRESET --out {p.parent}`; "
                    "`gnnff data presets` lists them) or fix the path (in the YAML: relative to "
                    "the YAML file's folder; with --set: relative to the working directory)",
                )
            )
        d[key] = str(p) + (f"@{index}" if index is not None else "")
    d["cache"] = check_cache(d["cache"], base_for("data.cache"), d["train"])
    for key in ("energy_key", "forces_key", "stress_key", "virial_key"):
        if d[key] is not None and (not isinstance(d[key], str) or not d[key]):
            raise ConfigError(f"data.{key} must be a key name (string) or null, got {d[key]!r}")

    m = cfg["model"]
    m.setdefault("family", "allegro")

    lo = cfg["loss"]
    for key in lo:
        lo[key] = check_number("loss", key, lo[key], lo=0.0)
    if lo["energy_weight"] == 0 and lo["forces_weight"] == 0 and lo["stress_weight"] == 0:
        raise ConfigError("all loss weights are 0: set loss.energy_weight or loss.forces_weight")

    dc = cfg["decorrelation"]
    if not isinstance(dc["enabled"], bool):
        raise ConfigError(f"decorrelation.enabled must be true or false, got {dc['enabled']!r}")
    layers = dc["layers"]
    if layers != "all" and not (
        isinstance(layers, list)
        and layers
        and all(isinstance(k, int) and not isinstance(k, bool) for k in layers)
    ):
        raise ConfigError(
            f"decorrelation.layers must be 'all' or a list of layer indices, got {layers!r}"
        )
    if dc["max_edges"] != "auto":
        if isinstance(dc["max_edges"], str):
            raise ConfigError(
                f"decorrelation.max_edges must be an integer >= 2, null (all edges) or 'auto', "
                f"got {dc['max_edges']!r}"
            )
        dc["max_edges"] = check_number(
            "decorrelation", "max_edges", dc["max_edges"], lo=2, integer=True, allow_none=True
        )
    check_choice("decorrelation", "variant", dc["variant"], DECORRELATION_VARIANTS)
    check_scheduler(dc["scheduler"])
    check_scheduler_options(dc)
    check_choice("decorrelation", "decay_shape", dc["decay_shape"], ("cosine", "exponential"))
    dc["decay_epochs"] = check_number(
        "decorrelation", "decay_epochs", dc["decay_epochs"], lo=1e-9, allow_none=True
    )
    check_choice("decorrelation", "after_warmup", dc["after_warmup"], ("hold", "anneal"))
    for key in ("lambda_max", "lambda_end", "lambda_min", "lambda_init", "target_fraction"):
        dc[key] = check_number("decorrelation", key, dc[key], lo=0.0)
    dc["warmup_epochs"] = check_number("decorrelation", "warmup_epochs", dc["warmup_epochs"], 0.0)
    dc["warmup_steps"] = check_number(
        "decorrelation", "warmup_steps", dc["warmup_steps"], lo=0, integer=True, allow_none=True
    )
    dc["anneal_epochs"] = check_number(
        "decorrelation", "anneal_epochs", dc["anneal_epochs"], lo=0.0, allow_none=True
    )
    dc["momentum"] = check_number("decorrelation", "momentum", dc["momentum"], lo=1e-9, hi=1.0)
    if dc["lambda_min"] > dc["lambda_max"]:
        raise ConfigError("decorrelation.lambda_min must be <= decorrelation.lambda_max")
    if dc["enabled"]:
        check_variant_fits_model(dc["variant"], m)

    op = cfg["optim"]
    op["lr"] = check_number("optim", "lr", op["lr"], lo=0.0)
    op["weight_decay"] = check_number("optim", "weight_decay", op["weight_decay"], lo=0.0)
    check_choice("optim", "lr_schedule", op["lr_schedule"], ("plateau", "cosine", "none"))
    op["plateau_factor"] = check_number("optim", "plateau_factor", op["plateau_factor"], 0.0, 1.0)
    op["plateau_patience"] = check_number(
        "optim", "plateau_patience", op["plateau_patience"], lo=0, integer=True
    )
    op["min_lr"] = check_number("optim", "min_lr", op["min_lr"], lo=0.0)

    tr = cfg["training"]
    tr["epochs"] = check_number("training", "epochs", tr["epochs"], lo=1, integer=True)
    for key in ("batch_size", "valid_batch_size"):
        tr[key] = check_number("training", key, tr[key], lo=1, integer=True)
    tr["seed"] = check_number("training", "seed", tr["seed"], lo=0, integer=True)
    if not isinstance(tr["device"], str):
        raise ConfigError(f"training.device must be a string like 'cpu', got {tr['device']!r}")
    check_choice("training", "dtype", tr["dtype"], ("float32", "float64"))
    tr["ema_decay"] = check_number(
        "training", "ema_decay", tr["ema_decay"], lo=0.0, hi=0.999999, allow_none=True
    )
    tr["early_stopping_patience"] = check_number(
        "training",
        "early_stopping_patience",
        tr["early_stopping_patience"],
        lo=1,
        integer=True,
        allow_none=True,
    )
    tr["grad_clip"] = check_number(
        "training", "grad_clip", tr["grad_clip"], lo=0.0, allow_none=True
    )
    tr["num_threads"] = check_number(
        "training", "num_threads", tr["num_threads"], lo=1, integer=True, allow_none=True
    )
    check_choice("training", "export", tr["export"], ("best", "last"))
    if not isinstance(tr["progress"], bool):
        raise ConfigError(f"training.progress must be true or false, got {tr['progress']!r}")
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read a YAML training config, apply ``--set`` overrides, validate. Relative paths in the
    file are relative to its folder, those in ``overrides`` to the working directory."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = load_yaml(path) or {}
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    raw = apply_overrides(raw, overrides or [])
    return validate_config(raw, base_dir=path.parent, cli_keys=override_keys(overrides))
