"""Strictly-local equivariant edge models (``allegro``, ``allegro-attn``), checkpoints and the
exported TorchScript model file (docs/model_contract.md)."""

from .config import FAMILIES, default_model_config, resolve_model_config
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
from .model import GNNFFModel, build_model
from .neighbors import neighbor_list

__all__ = [
    "FAMILIES",
    "ExportedModel",
    "GNNFFModel",
    "build_model",
    "default_model_config",
    "export_model",
    "load",
    "load_checkpoint",
    "eager_from_file",
    "model_from_checkpoint",
    "neighbor_list",
    "read_metadata",
    "resolve_model_config",
    "save_checkpoint",
    "save_checkpoint_dict",
]
