"""Model configuration: defaults per family and validation with helpful messages."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable
from typing import Any

FAMILIES = ("allegro", "allegro-attn")

_COMMON_DEFAULTS: dict[str, Any] = {
    "family": "allegro",
    "species": [],
    "cutoff": 5.0,
    "l_max": 1,
    "num_layers": 2,
    "num_scalar": 32,
    "num_tensor": 8,
    "mlp_hidden": [64],
    "num_bessel": 8,
    "poly_p": 6,
    "species_embed_dim": 8,
    "residual_coeff": 1.0,
    "avg_num_neighbors": 20.0,
    "zbl": False,
    "zbl_r_on": 1.0,
    "zbl_r_off": 2.0,
    # per-element reference energies: "average" (least squares), "isolated_atoms" or {el: eV}
    "e0s": "average",
}

_ATTN_DEFAULTS: dict[str, Any] = {
    "attn_heads": 1,
    "softmax": {"backend": "float", "bits": None},
}


def default_model_config(family: str = "allegro") -> dict[str, Any]:
    """All hyperparameters of ``family`` with their default values (``species`` empty)."""
    if family not in FAMILIES:
        raise ValueError(_unknown(family, FAMILIES, "model family"))
    cfg = copy.deepcopy(_COMMON_DEFAULTS)
    cfg["family"] = family
    if family == "allegro-attn":
        cfg.update(copy.deepcopy(_ATTN_DEFAULTS))
    return cfg


def _unknown(name: str, choices: Iterable[Any], what: str) -> str:
    choices = list(choices)
    close = difflib.get_close_matches(str(name), choices, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {name!r}{hint} (valid: {', '.join(map(str, choices))})"


def resolve_model_config(config: dict[str, Any]) -> dict[str, Any]:
    """Fill defaults into ``config`` and validate it. Raises ValueError naming the bad key."""
    if not isinstance(config, dict):
        raise ValueError(f"model config must be a dict, got {type(config).__name__}")
    family = config.get("family")
    if family is None:
        raise ValueError(f"model config needs 'family' (one of {', '.join(FAMILIES)})")
    cfg = default_model_config(family)
    for key, value in config.items():
        if key not in cfg:
            if key in _ATTN_DEFAULTS:
                raise ValueError(
                    f"model config key {key!r} only applies to family 'allegro-attn' "
                    f"(this config is {family!r}); remove it or change the family"
                )
            raise ValueError(_unknown(key, sorted(cfg), "model config key"))
        cfg[key] = copy.deepcopy(value)
    _validate(cfg)
    return cfg


def _validate(cfg: dict[str, Any]) -> None:
    species = cfg["species"]
    if (
        not isinstance(species, (list, tuple))
        or not species
        or not all(isinstance(s, str) for s in species)
    ):
        raise ValueError("model config 'species' must be a non-empty list of element symbols")
    from ase.data import atomic_numbers

    for s in species:
        if s not in atomic_numbers:
            close = difflib.get_close_matches(str(s), list(atomic_numbers)[1:], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"model config 'species' has {s!r}, which is not an element symbol{hint}"
            )
    if len(set(species)) != len(species):
        raise ValueError(f"model config 'species' has duplicates: {species}")
    cfg["species"] = list(species)
    for key in ("cutoff", "avg_num_neighbors", "residual_coeff", "zbl_r_on", "zbl_r_off"):
        value = cfg[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"model config {key!r} must be a number, got {value!r}")
        cfg[key] = float(value)
    if not isinstance(cfg["zbl"], bool):
        raise ValueError(f"model config 'zbl' must be true or false, got {cfg['zbl']!r}")
    if not cfg["cutoff"] > 0:
        raise ValueError(f"cutoff must be > 0 A, got {cfg['cutoff']}")
    if cfg["l_max"] not in (1, 2):
        raise ValueError(f"l_max must be 1 or 2, got {cfg['l_max']}")
    for key in ("num_layers", "num_scalar", "num_tensor", "num_bessel", "species_embed_dim"):
        if not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ValueError(f"{key} must be a positive integer, got {cfg[key]!r}")
    if not isinstance(cfg["poly_p"], int) or cfg["poly_p"] < 2:
        raise ValueError(f"poly_p must be an integer >= 2, got {cfg['poly_p']!r}")
    hidden = cfg["mlp_hidden"]
    if not isinstance(hidden, (list, tuple)) or not all(
        isinstance(h, int) and h > 0 for h in hidden
    ):
        raise ValueError(f"mlp_hidden must be a list of positive integers, got {hidden!r}")
    cfg["mlp_hidden"] = list(hidden)
    if not cfg["avg_num_neighbors"] > 0:
        raise ValueError("avg_num_neighbors must be > 0")
    if cfg["zbl"] and not (0 <= cfg["zbl_r_on"] < cfg["zbl_r_off"] <= cfg["cutoff"]):
        raise ValueError(
            "ZBL switching needs 0 <= zbl_r_on < zbl_r_off <= cutoff, got "
            f"{cfg['zbl_r_on']}, {cfg['zbl_r_off']}, cutoff {cfg['cutoff']}"
        )
    _validate_e0s(cfg)
    if cfg["family"] == "allegro-attn":
        heads = cfg["attn_heads"]
        if not isinstance(heads, int) or heads < 1 or cfg["num_tensor"] % heads:
            raise ValueError(
                f"attn_heads must be a positive integer dividing num_tensor "
                f"({cfg['num_tensor']}), got {heads!r}"
            )
        sm = cfg["softmax"]
        if isinstance(sm, str):
            sm = {"backend": sm, "bits": None}
        if not isinstance(sm, dict) or "backend" not in sm:
            raise ValueError("softmax must be {'backend': name, 'bits': null|8|16}")
        extra = set(sm) - {"backend", "bits"}
        if extra:
            raise ValueError(f"unknown softmax keys {sorted(extra)}; use 'backend' and 'bits'")
        cfg["softmax"] = {"backend": str(sm["backend"]), "bits": sm.get("bits")}


E0S_MODES = ("average", "isolated_atoms")


def _validate_e0s(cfg: dict[str, Any]) -> None:
    e0s = cfg["e0s"]
    if isinstance(e0s, str):
        if e0s not in E0S_MODES:
            raise ValueError(_unknown(e0s, E0S_MODES, "e0s mode") + " or a mapping {symbol: eV}")
        return
    if not isinstance(e0s, dict):
        raise ValueError(
            f"e0s must be 'average', 'isolated_atoms' or a mapping {{symbol: eV}}, got {e0s!r}"
        )
    missing = [s for s in cfg["species"] if s not in e0s]
    extra = [s for s in e0s if s not in cfg["species"]]
    if missing:
        raise ValueError(f"e0s mapping has no energy for {missing}; give one per species "
                         f"{cfg['species']} (eV, e.g. isolated-atom DFT energies)")
    if extra:
        raise ValueError(f"e0s mapping names {extra}, which are not model species "
                         f"{cfg['species']}; remove them")
    for s, v in e0s.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v:
            raise ValueError(f"e0s[{s!r}] must be a finite number (eV), got {v!r}")
    cfg["e0s"] = {s: float(e0s[s]) for s in cfg["species"]}
