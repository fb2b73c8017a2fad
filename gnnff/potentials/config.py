"""Model configuration: defaults per family and validation with helpful messages.

The hyperparameters below are common to every family (species, cutoff, number of layers, the
per-species energy reference, the ZBL prior, weight initialisation); a registered family
(:class:`gnnff.potentials.families.ModelFamily`) owns the rest of its section: its
architecture keys, their defaults and checks (allegro's ``num_scalar``, ``l_max``, ... are
allegro's, in :mod:`gnnff.potentials.allegro.families`), so a plug-in family is not asked
for keys it does not use.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from gnnff.errors import GNNFFError, did_you_mean
from gnnff.extensions import MODELS, SOFTMAX

from .families import get_family


class ModelConfigError(GNNFFError, ValueError):
    """A model config that cannot be built; the message names the key and the fix."""


WEIGHT_INITS = ("variance_preserving", "torch")

_COMMON_DEFAULTS: dict[str, Any] = {
    "family": "allegro",
    "species": [],
    "cutoff": 5.0,
    "num_layers": 2,
    "avg_num_neighbors": 20.0,
    "zbl": False,
    "zbl_r_on": 1.0,
    "zbl_r_off": 2.0,
    # per-element reference energies: "average" (least squares), "isolated_atoms" or {el: eV}
    "e0s": "average",
    # initial weights of every Linear layer: "variance_preserving" (unit second moment through
    # each layer, gnnff.potentials.blocks.variance_preserving_init) or "torch" (PyTorch's
    # default; the bundled models were trained with it; it learned slower per CPU-second in
    # benchmarks/bench_training_vs_nequip.py)
    "weight_init": "variance_preserving",
    "zbl_pair_windows": None,
    "zbl_pair_scale": None,
}


def default_model_config(family: str = "allegro") -> dict[str, Any]:
    """All hyperparameters of the registered ``family`` with their default values (``species``
    empty). ValueError (``gnnff.extensions.PluginError``) for an unknown family, listing the
    registered ones."""
    if not isinstance(family, str):
        raise ModelConfigError(f"model family must be a name (string), got {family!r}")
    fam = get_family(family)
    cfg = copy.deepcopy(_COMMON_DEFAULTS)
    cfg["family"] = family
    clash = sorted(set(fam.defaults) & set(cfg))
    if clash:
        raise ModelConfigError(
            f"model family {family!r} redefines the common hyperparameters {clash}; "
            "a family may only add its own keys"
        )
    cfg.update(copy.deepcopy(dict(fam.defaults)))
    return cfg


def _owner_families(key: str) -> list[str]:
    """Registered families that define the hyperparameter ``key`` (for error messages)."""
    owners = []
    for name in MODELS.names():
        try:
            if key in get_family(name).defaults:
                owners.append(name)
        except (ValueError, TypeError):  # a broken plug-in must not hide the real error
            continue
    return owners


def _unknown(name: str, choices: Iterable[Any], what: str) -> str:
    choices = list(choices)
    hint = did_you_mean(name, choices)
    return f"unknown {what} {name!r}{hint} (valid: {', '.join(map(str, choices))})"


def resolve_model_config(config: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults into ``config`` and validate it. Raises ValueError naming the bad key."""
    if not isinstance(config, dict):
        raise ModelConfigError(f"model config must be a dict, got {type(config).__name__}")
    family = config.get("family")
    if family is None:
        raise ModelConfigError(f"model config needs 'family' (one of {', '.join(MODELS.names())})")
    cfg = default_model_config(family)
    for key, value in config.items():
        if key not in cfg:
            owners = _owner_families(key)
            if owners:
                raise ModelConfigError(
                    f"model config key {key!r} only applies to family "
                    f"{' or '.join(repr(o) for o in owners)} (this config is {family!r}); "
                    "remove it or change the family"
                )
            raise ModelConfigError(_unknown(key, sorted(cfg), "model config key"))
        cfg[key] = copy.deepcopy(value)
    _validate(cfg)
    return cfg


def canonical_pair(key: str, species: list[str]) -> str:
    """``"Si-O"`` -> ``"O-Si"`` (symbols sorted alphabetically, as in the stability reference);
    ValueError when a symbol is not one of ``species``."""
    parts = str(key).split("-")
    if len(parts) != 2 or not all(p in species for p in parts):
        raise ModelConfigError(f"species pair {key!r} must look like 'A-B' with A, B in {species}")
    return "-".join(sorted(parts))


def _window(key: str, value: Any) -> list[float]:
    ok = (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )
    if not ok or not 0 <= value[0] < value[1]:
        raise ModelConfigError(
            f"zbl_pair_windows[{key!r}] must be [r_on, r_off] with "
            f"0 <= r_on < r_off (A), got {value!r}"
        )
    return [float(value[0]), float(value[1])]


def _strength(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ModelConfigError(f"zbl_pair_scale[{key!r}] must be a number >= 0, got {value!r}")
    return float(value)


def _pair_table(cfg: dict[str, Any], name: str, check: Callable[[str, Any], Any]) -> Any:
    """Validate a per-pair table (``{"O-Si": value}``) with canonical keys; ``"auto"`` is kept
    for ``zbl_pair_windows`` (the trainer derives it from the training data)."""
    table = cfg[name]
    if table is None or (name == "zbl_pair_windows" and table == "auto"):
        return table
    if not isinstance(table, dict):
        hint = ", 'auto'" if name == "zbl_pair_windows" else ""
        raise ModelConfigError(
            f"model config {name!r} must be null{hint} or a mapping {{'A-B': ...}}, got {table!r}"
        )
    out = {}
    for key, value in table.items():
        pair = canonical_pair(key, cfg["species"])
        out[pair] = check(pair, value)
    if name == "zbl_pair_windows":
        for pair, (_, off) in out.items():
            if off > cfg["cutoff"]:
                raise ModelConfigError(
                    f"zbl_pair_windows[{pair!r}] ends at {off} A, beyond the "
                    f"cutoff {cfg['cutoff']} A"
                )
    return out


def pair_tables(cfg: dict[str, Any]) -> tuple[list[list[float]] | None, list[float] | None]:
    """The resolved config's per-pair ZBL windows and strengths as flattened [S*S] lists
    (index s_i * S + s_j), missing pairs filled with the global window / strength 1;
    (None, None) when neither table is set. ValueError for an unresolved ``"auto"``."""
    windows, scale = cfg.get("zbl_pair_windows"), cfg.get("zbl_pair_scale")
    if windows == "auto":
        raise ModelConfigError(
            "zbl_pair_windows is 'auto': it is derived from the training set's per-pair "
            "minimum distances by `gnnff train`; to build a model directly give explicit "
            "windows {'A-B': [r_on, r_off]} (see gnnff.potentials.analysis.short_range)"
        )
    if windows is None and scale is None:
        return None, None
    sp = cfg["species"]
    flat_w, flat_s = [], []
    for a in sp:
        for b in sp:
            key = "-".join(sorted((a, b)))
            flat_w.append(list((windows or {}).get(key, [cfg["zbl_r_on"], cfg["zbl_r_off"]])))
            flat_s.append(float((scale or {}).get(key, 1.0)))
    return flat_w, flat_s


def _validate(cfg: dict[str, Any]) -> None:
    species = cfg["species"]
    if (
        not isinstance(species, (list, tuple))
        or not species
        or not all(isinstance(s, str) for s in species)
    ):
        raise ModelConfigError("model config 'species' must be a non-empty list of element symbols")
    from ase.data import atomic_numbers

    for s in species:
        if s not in atomic_numbers:
            hint = did_you_mean(s, list(atomic_numbers)[1:])
            raise ModelConfigError(
                f"model config 'species' has {s!r}, which is not an element symbol{hint}"
            )
    if len(set(species)) != len(species):
        raise ModelConfigError(f"model config 'species' has duplicates: {species}")
    cfg["species"] = list(species)
    for key in ("cutoff", "avg_num_neighbors", "zbl_r_on", "zbl_r_off"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ModelConfigError(f"model config {key!r} must be a number, got {value!r}")
        cfg[key] = float(value)
    if not isinstance(cfg["zbl"], bool):
        raise ModelConfigError(f"model config 'zbl' must be true or false, got {cfg['zbl']!r}")
    if cfg["weight_init"] not in WEIGHT_INITS:
        raise ModelConfigError(
            _unknown(cfg["weight_init"], WEIGHT_INITS, "model config weight_init")
        )
    if not cfg["cutoff"] > 0:
        raise ModelConfigError(f"cutoff must be > 0 A, got {cfg['cutoff']}")
    if not isinstance(cfg["num_layers"], int) or cfg["num_layers"] < 1:
        raise ModelConfigError(f"num_layers must be a positive integer, got {cfg['num_layers']!r}")
    if not cfg["avg_num_neighbors"] > 0:
        raise ModelConfigError("avg_num_neighbors must be > 0")
    if cfg["zbl"] and not (0 <= cfg["zbl_r_on"] < cfg["zbl_r_off"] <= cfg["cutoff"]):
        raise ModelConfigError(
            "ZBL switching needs 0 <= zbl_r_on < zbl_r_off <= cutoff, got "
            f"{cfg['zbl_r_on']}, {cfg['zbl_r_off']}, cutoff {cfg['cutoff']}"
        )
    _validate_e0s(cfg)
    cfg["zbl_pair_windows"] = _pair_table(cfg, "zbl_pair_windows", _window)
    cfg["zbl_pair_scale"] = _pair_table(cfg, "zbl_pair_scale", _strength)
    if "softmax" in cfg:
        cfg["softmax"] = _softmax_setting(cfg["softmax"])
    fam = get_family(cfg["family"])
    if fam.validate is not None:
        try:
            fam.validate(cfg)
        except ValueError as exc:  # a plug-in's check may raise a plain ValueError
            if isinstance(exc, GNNFFError):
                raise
            raise ModelConfigError(f"model family {fam.name!r}: {exc}") from exc


def _softmax_setting(sm: Any) -> dict[str, Any]:
    """{"backend": a registered softmax backend, "bits": None or a positive integer}."""
    if isinstance(sm, str):
        sm = {"backend": sm, "bits": None}
    if not isinstance(sm, dict) or "backend" not in sm:
        raise ModelConfigError("softmax must be {'backend': name, 'bits': null|8|16}")
    extra = set(sm) - {"backend", "bits"}
    if extra:
        raise ModelConfigError(f"unknown softmax keys {sorted(extra)}; use 'backend' and 'bits'")
    name, bits = str(sm["backend"]), sm.get("bits")
    if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int) or bits < 1):
        raise ModelConfigError(f"softmax bits must be null or a positive integer, got {bits!r}")
    SOFTMAX.get(name)  # PluginError listing the registered backends when unknown
    return {"backend": name, "bits": bits}


E0S_MODES = ("average", "isolated_atoms")


def _validate_e0s(cfg: dict[str, Any]) -> None:
    e0s = cfg["e0s"]
    if isinstance(e0s, str):
        if e0s not in E0S_MODES:
            raise ModelConfigError(
                _unknown(e0s, E0S_MODES, "e0s mode") + " or a mapping {symbol: eV}"
            )
        return
    if not isinstance(e0s, dict):
        raise ModelConfigError(
            f"e0s must be 'average', 'isolated_atoms' or a mapping {{symbol: eV}}, got {e0s!r}"
        )
    missing = [s for s in cfg["species"] if s not in e0s]
    extra = [s for s in e0s if s not in cfg["species"]]
    if missing:
        raise ModelConfigError(
            f"e0s mapping has no energy for {missing}; give one per species "
            f"{cfg['species']} (eV, e.g. isolated-atom DFT energies)"
        )
    if extra:
        raise ModelConfigError(
            f"e0s mapping names {extra}, which are not model species {cfg['species']}; remove them"
        )
    for s, v in e0s.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
            raise ModelConfigError(f"e0s[{s!r}] must be a finite number (eV), got {v!r}")
    cfg["e0s"] = {s: float(e0s[s]) for s in cfg["species"]}
