"""Training checkpoints: the dict ``gnnff train`` writes every epoch and export reads."""

import copy
import os
from pathlib import Path
from typing import Any

import torch

from gnnff.io_utils import atomic_write

from .. import contract
from ..base import EdgeModel
from ..build import build_model
from .formats import is_torchscript

CHECKPOINT_FORMAT = "gnnff-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_FORMAT_VERSION",
    "load_checkpoint",
    "model_from_checkpoint",
    "save_checkpoint",
    "save_checkpoint_dict",
]


def float_dtype(state: dict[str, torch.Tensor]) -> torch.dtype:
    """The floating dtype of a state dict (float32 when it has no floating tensor)."""
    return next((v.dtype for v in state.values() if v.is_floating_point()), torch.float32)


def save_checkpoint_dict(
    model: EdgeModel,
    training_summary: dict[str, Any] | None = None,
    ema_state: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The checkpoint dict (save it with ``torch.save``; it loads with ``weights_only=True``)."""
    ckpt: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "model_config": copy.deepcopy(model.config),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "training_summary": training_summary,
    }
    if ema_state is not None:
        ckpt["ema_state"] = ema_state
    ckpt.update(extra)
    return ckpt


def save_checkpoint(path: str | os.PathLike[str], model: EdgeModel, **kwargs: Any) -> Path:
    """Write :func:`save_checkpoint_dict` atomically to ``path``."""
    ckpt = save_checkpoint_dict(model, **kwargs)
    return atomic_write(path, lambda p: torch.save(ckpt, p))


def load_checkpoint(path_or_dict: str | os.PathLike[str] | dict[str, Any]) -> dict[str, Any]:
    """Read and validate a gnnff checkpoint dict."""
    if isinstance(path_or_dict, dict):
        ckpt = path_or_dict
        where = "checkpoint dict"
    else:
        path = Path(path_or_dict)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist")
        if is_torchscript(path):
            raise contract.ModelFileError(
                f"{path} is an exported model file, not a training checkpoint; load it with "
                "gnnff.potentials.load (or re-export it: `gnnff export MODEL.pt --out ...`)"
            )
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise contract.ModelFileError(
                f"{path} is not a gnnff checkpoint (torch.load failed: {type(exc).__name__}); "
                "pass the checkpoint file written by `gnnff train`"
            ) from None
        where = str(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{where} is not a gnnff checkpoint (no format {CHECKPOINT_FORMAT!r})")
    if ckpt.get("format_version") != CHECKPOINT_FORMAT_VERSION:
        raise contract.ModelFileError(
            f"{where} has checkpoint format_version {ckpt.get('format_version')!r}; this gnnff "
            f"reads version {CHECKPOINT_FORMAT_VERSION}"
        )
    for key in ("model_config", "model_state"):
        if key not in ckpt:
            raise contract.ModelFileError(f"{where} lacks {key!r}")
    return ckpt


def model_from_checkpoint(path_or_dict: str | os.PathLike[str] | dict[str, Any]) -> EdgeModel:
    """Rebuild the model of a checkpoint; uses ``ema_state`` when the checkpoint sets
    ``use_ema_for_export`` (top level or in its training summary), else ``model_state``."""
    ckpt = load_checkpoint(path_or_dict)
    model = build_model(ckpt["model_config"])
    summary = ckpt.get("training_summary") or {}
    use_ema = bool(ckpt.get("use_ema_for_export", summary.get("use_ema_for_export", False)))
    state = ckpt["ema_state"] if use_ema and ckpt.get("ema_state") is not None else None
    state = state if state is not None else ckpt["model_state"]
    model = model.to(float_dtype(state))  # no rounding of float64 weights through float32
    model.load_state_dict(state)
    model.config["avg_num_neighbors"] = float(model.avg_num_neighbors)  # type: ignore[arg-type]
    return model.eval()
