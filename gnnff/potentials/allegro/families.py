"""The built-in model families ``allegro`` and ``allegro-attn`` (both built by
:class:`gnnff.potentials.allegro.model.AllegroModel`), registered in
:data:`gnnff.extensions.MODELS` when this module is imported (the registry imports it on the
first look-up of a family). It imports the model code only when a model is built, so config
validation stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gnnff.extensions import MODELS

from ..config import ModelConfigError
from ..families import ModelFamily

if TYPE_CHECKING:
    from ..base import EdgeModel


def _build_allegro(cfg: dict[str, Any]) -> EdgeModel:
    from .model import AllegroModel

    return AllegroModel(cfg)


# allegro's own hyperparameters (the common ones are in gnnff.potentials.config)
ALLEGRO_DEFAULTS: dict[str, Any] = {
    "l_max": 1,
    "num_scalar": 32,
    "num_tensor": 8,
    "mlp_hidden": [64],
    "num_bessel": 8,
    "poly_p": 6,
    "species_embed_dim": 8,
    "residual_coeff": 1.0,
}


def _validate_allegro(cfg: dict[str, Any]) -> None:
    """Check allegro's hyperparameters (ModelConfigError naming the key); normalises
    ``mlp_hidden`` to a list and ``residual_coeff`` to a float."""
    if cfg["l_max"] not in (1, 2):
        raise ModelConfigError(f"l_max must be 1 or 2, got {cfg['l_max']}")
    for key in ("num_scalar", "num_tensor", "num_bessel", "species_embed_dim"):
        if isinstance(cfg[key], bool) or not isinstance(cfg[key], int) or cfg[key] < 1:
            raise ModelConfigError(f"{key} must be a positive integer, got {cfg[key]!r}")
    if not isinstance(cfg["poly_p"], int) or cfg["poly_p"] < 2:
        raise ModelConfigError(f"poly_p must be an integer >= 2, got {cfg['poly_p']!r}")
    hidden = cfg["mlp_hidden"]
    if not isinstance(hidden, (list, tuple)) or not all(
        isinstance(h, int) and h > 0 for h in hidden
    ):
        raise ModelConfigError(f"mlp_hidden must be a list of positive integers, got {hidden!r}")
    cfg["mlp_hidden"] = list(hidden)
    coeff = cfg["residual_coeff"]
    if isinstance(coeff, bool) or not isinstance(coeff, (int, float)):
        raise ModelConfigError(f"model config 'residual_coeff' must be a number, got {coeff!r}")
    cfg["residual_coeff"] = float(coeff)


def _validate_attention(cfg: dict[str, Any]) -> None:
    _validate_allegro(cfg)
    heads = cfg["attn_heads"]
    if not isinstance(heads, int) or heads < 1 or cfg["num_tensor"] % heads:
        raise ModelConfigError(
            f"attn_heads must be a positive integer dividing num_tensor "
            f"({cfg['num_tensor']}), got {heads!r}"
        )


MODELS.register(
    "allegro",
    ModelFamily(
        "allegro",
        _build_allegro,
        defaults=ALLEGRO_DEFAULTS,
        validate=_validate_allegro,
        description="strictly-local Allegro-style edge model",
    ),
    builtin=True,
)
MODELS.register(
    "allegro-attn",
    ModelFamily(
        "allegro-attn",
        _build_allegro,
        defaults={
            **ALLEGRO_DEFAULTS,
            "attn_heads": 1,
            "softmax": {"backend": "float", "bits": None},
        },
        validate=_validate_attention,
        description="allegro with attention-weighted environment sums",
    ),
    builtin=True,
)
