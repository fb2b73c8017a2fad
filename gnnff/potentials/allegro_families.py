"""The built-in model families ``allegro`` and ``allegro-attn`` (both built by
:class:`gnnff.potentials.model.GNNFFModel`), registered in :data:`gnnff.extensions.MODELS` when
this module is imported (the registry imports it on the first look-up of a family). It imports
the model code only when a model is built, so config validation stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gnnff.extensions import MODELS

from .families import ModelFamily

if TYPE_CHECKING:
    from .base import EdgeModel


def _build_allegro(cfg: dict[str, Any]) -> EdgeModel:
    from .model import GNNFFModel

    return GNNFFModel(cfg)


def _validate_attention(cfg: dict[str, Any]) -> None:
    heads = cfg["attn_heads"]
    if not isinstance(heads, int) or heads < 1 or cfg["num_tensor"] % heads:
        raise ValueError(
            f"attn_heads must be a positive integer dividing num_tensor "
            f"({cfg['num_tensor']}), got {heads!r}"
        )


MODELS.register(
    "allegro",
    ModelFamily("allegro", _build_allegro, description="strictly-local Allegro-style edge model"),
    builtin=True,
)
MODELS.register(
    "allegro-attn",
    ModelFamily(
        "allegro-attn",
        _build_allegro,
        defaults={"attn_heads": 1, "softmax": {"backend": "float", "bits": None}},
        validate=_validate_attention,
        description="allegro with attention-weighted environment sums",
    ),
    builtin=True,
)
