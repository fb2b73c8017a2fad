"""Model families: what a family is (:class:`ModelFamily`) and how to look one up.

A family is registered by name in :data:`gnnff.extensions.MODELS` (``allegro`` and
``allegro-attn`` by :mod:`gnnff.potentials.allegro.families`; other packages use the
``gnnff.models`` entry-point group, docs/architecture.md); ``gnnff.potentials.build_model``
builds a config through it. Its ``build`` turns a resolved config (every hyperparameter filled in
and checked, see :func:`gnnff.potentials.config.resolve_model_config`) into an eager model
with the :class:`gnnff.potentials.base.EdgeModel` interface. The family name is written to the
model file and the whole config to its ``hyperparameters``, so a file is rebuilt through the
same registered family (``eager_from_file``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gnnff.extensions import MODELS, PluginError

if TYPE_CHECKING:
    from .base import EdgeModel

__all__ = ["ModelFamily", "family_names", "get_family"]


@dataclass(frozen=True)
class ModelFamily:
    """One model family.

    name: the registered name (also ``config["family"]``).
    build: resolved config dict -> eager model (an ``EdgeModel``).
    defaults: the family's own hyperparameters and their defaults, added to the common ones
      (``gnnff.potentials.config``). A ``softmax`` default ({"backend", "bits"}) marks a family
      with an attention softmax: the backend name is then checked against the registry and
      ``set_softmax_backend`` / ``export_model(softmax=...)`` apply to it.
    validate: optional check of the resolved config (raise ValueError naming the key and the
      fix); it may normalise values in place.
    description: one line for listings.
    """

    name: str
    build: Callable[[dict[str, Any]], EdgeModel]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    validate: Callable[[dict[str, Any]], None] | None = None
    description: str = ""

    @property
    def has_softmax(self) -> bool:
        return "softmax" in self.defaults


def get_family(name: str) -> ModelFamily:
    """The registered family ``name``; ``PluginError`` (a ValueError) listing the registered
    families when unknown, ``TypeError`` when the registered object is not a ModelFamily."""
    fam = MODELS.get(name)
    if not isinstance(fam, ModelFamily):
        raise TypeError(
            f"model family {name!r} ({MODELS.origin(name)}) must be registered as a "
            f"gnnff.potentials.families.ModelFamily, got {type(fam).__name__}"
        )
    if fam.name != name:
        raise PluginError(
            f"model family registered as {name!r} ({MODELS.origin(name)}) calls itself "
            f"{fam.name!r}; the two names must agree"
        )
    return fam


def family_names() -> tuple[str, ...]:
    """The registered model families (built-ins first)."""
    return MODELS.names()
