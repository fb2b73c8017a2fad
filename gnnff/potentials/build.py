"""Building a model by its family: the entry point of the family interface.

:func:`build_model` resolves a config (the common hyperparameters of
:mod:`gnnff.potentials.config` plus the family's own) and hands it to the registered
:class:`gnnff.potentials.families.ModelFamily`; it knows no family's internals.
"""

from __future__ import annotations

from typing import Any

from .base import EdgeModel
from .config import resolve_model_config
from .families import get_family

__all__ = ["build_model"]


def build_model(config: dict[str, Any]) -> EdgeModel:
    """Build a model from a config dict through its registered family (needs ``family``,
    ``species``, ``cutoff``; every other hyperparameter has a default, see
    :func:`gnnff.potentials.default_model_config`). Raises ValueError for a bad config or an
    unknown family (listing the registered ones), TypeError when a family builds something
    that is not an :class:`EdgeModel`."""
    cfg = resolve_model_config(config)
    model = get_family(cfg["family"]).build(cfg)
    if not isinstance(model, EdgeModel):
        raise TypeError(
            f"model family {cfg['family']!r} built a {type(model).__name__}; a family must "
            "build a gnnff.potentials.base.EdgeModel subclass"
        )
    return model
