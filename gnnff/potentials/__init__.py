"""Strictly-local equivariant edge models (``allegro``, ``allegro-attn``), checkpoints and the
exported TorchScript model file (docs/model_contract.md).

Public names are imported lazily (``gnnff._lazy``) so that ``gnnff --help`` stays free of torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnnff._lazy import lazy_exports

_EXPORTS = {
    "EdgeModel": "base",
    "ModelFamily": "families",
    "family_names": "families",
    "default_model_config": "config",
    "resolve_model_config": "config",
    "ModelConfigError": "config",
    "ModelFileError": "contract",
    "ExportedModel": "export",
    "eager_from_file": "export",
    "export_model": "export",
    "load": "export",
    "load_checkpoint": "export",
    "model_from_checkpoint": "export",
    "read_metadata": "export",
    "save_checkpoint": "export",
    "save_checkpoint_dict": "export",
    "GNNFFModel": "model",
    "make_softmax_backend": "softmax",
    "build_model": "model",
    "neighbor_list": "neighbors",
}

__all__ = [
    "EdgeModel",
    "ExportedModel",
    "GNNFFModel",
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
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static view for type checkers and IDEs
    from .base import EdgeModel
    from .config import ModelConfigError, default_model_config, resolve_model_config
    from .contract import ModelFileError
    from .export import (
        ExportedModel,
        eager_from_file,
        export_model,
        load,
        load_checkpoint,
        model_from_checkpoint,
        read_metadata,
        save_checkpoint,
        save_checkpoint_dict,
    )
    from .families import ModelFamily, family_names
    from .model import GNNFFModel, build_model
    from .neighbors import neighbor_list
    from .softmax import make_softmax_backend
