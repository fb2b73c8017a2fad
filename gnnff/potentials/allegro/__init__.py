"""The allegro implementation: the strictly-local equivariant edge model (:class:`AllegroModel`,
families ``allegro`` and ``allegro-attn``, registered by :mod:`.families`) and the gauge of its
scalar residual stream (:mod:`.reparam`).

Nothing outside this package depends on allegro's internals: the rest of gnnff builds a model
through ``gnnff.potentials.build_model`` and uses it through ``EdgeModel``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnnff._lazy import lazy_exports

_EXPORTS = {"AllegroModel": "model", "ALLEGRO_DEFAULTS": "families"}
__all__ = ["ALLEGRO_DEFAULTS", "AllegroModel"]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from .families import ALLEGRO_DEFAULTS
    from .model import AllegroModel
