"""Strictly-local equivariant edge models: the model interface, the ``allegro`` implementation,
model files and the bundled models.

One concern per place (docs/architecture.md): the interface and contract at the top
(``base``: EdgeModel, ``families``: ModelFamily, ``config``: common hyperparameters, ``build``:
build_model, ``contract``, ``softmax``, ``blocks``, ``neighbors``, ``device``); the allegro
implementation in ``allegro/``; model-file I/O in ``files/``; the bundled models in
``bundled``; analysis tools in ``analysis/``; CLI adapters in ``commands`` and
``lut_commands``.

Public names are imported lazily (``gnnff._lazy``) so that ``gnnff --help`` stays free of torch.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from gnnff._lazy import lazy_exports

_EXPORTS = {
    "EdgeModel": "base",
    "ModelFamily": "families",
    "family_names": "families",
    "default_model_config": "config",
    "resolve_model_config": "config",
    "ModelConfigError": "config",
    "ModelFileError": "contract",
    "ExportedModel": "files.exported",
    "eager_from_file": "files.load",
    "export_model": "files.export",
    "load": "files.load",
    "load_checkpoint": "files.checkpoint",
    "model_from_checkpoint": "files.checkpoint",
    "read_metadata": "files.load",
    "save_checkpoint": "files.checkpoint",
    "save_checkpoint_dict": "files.checkpoint",
    "AllegroModel": "allegro.model",
    "make_softmax_backend": "softmax",
    "build_model": "build",
    "neighbor_list": "neighbors",
}

__all__ = [
    "AllegroModel",
    "EdgeModel",
    "ExportedModel",
    "ModelConfigError",
    "ModelFamily",
    "ModelFileError",
    "build_model",
    "default_model_config",
    "eager_from_file",
    "export_model",
    "family_names",
    "load",
    "load_checkpoint",
    "make_softmax_backend",
    "model_from_checkpoint",
    "neighbor_list",
    "read_metadata",
    "resolve_model_config",
    "save_checkpoint",
    "save_checkpoint_dict",
]
_lazy_getattr, __dir__ = lazy_exports(__name__, _EXPORTS)
# renamed public names: old name -> (module, new name), kept for one release with a warning
_RENAMED = {"GNNFFModel": ("allegro.model", "AllegroModel")}


def __getattr__(name: str) -> Any:
    if name in _RENAMED:
        module, new = _RENAMED[name]
        warnings.warn(
            f"gnnff.potentials.{name} was renamed gnnff.potentials.{new} (the allegro "
            f"implementation, gnnff.potentials.{module}); the old name goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return _lazy_getattr(new)
    return _lazy_getattr(name)


if TYPE_CHECKING:  # static view for type checkers and IDEs
    from .allegro.model import AllegroModel
    from .base import EdgeModel
    from .build import build_model
    from .config import ModelConfigError, default_model_config, resolve_model_config
    from .contract import ModelFileError
    from .families import ModelFamily, family_names
    from .files.checkpoint import (
        load_checkpoint,
        model_from_checkpoint,
        save_checkpoint,
        save_checkpoint_dict,
    )
    from .files.export import export_model
    from .files.exported import ExportedModel
    from .files.load import eager_from_file, load, read_metadata
    from .neighbors import neighbor_list
    from .softmax import make_softmax_backend
