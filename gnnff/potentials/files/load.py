"""Reading model files: their metadata (without loading the model), the runnable module, and the
eager model rebuilt from a file."""

import copy
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from .. import contract
from ..base import EdgeModel
from ..build import build_model
from .formats import is_package, zip_names

_HOW_TO_MAKE = contract.HOW_TO_MAKE

__all__ = ["eager_from_file", "load", "read_metadata"]


def _check_model_file(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist; {_HOW_TO_MAKE}")
    names = zip_names(path)
    if is_package(path):
        if names is None or not any("/data/aotinductor/" in n for n in names):
            raise contract.ModelFileError(
                f"{path} is not an AOTInductor package (no compiled model inside); {_HOW_TO_MAKE}"
            )
        return names
    if names is None or not any(n.endswith("/constants.pkl") for n in names):
        kind = ""
        if names is not None and any(n.endswith("/data.pkl") for n in names):
            kind = " (it looks like a torch.save file, e.g. a training checkpoint)"
        raise contract.ModelFileError(f"{path} is not a gnnff model file{kind}; {_HOW_TO_MAKE}")
    return names


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """metadata.json of a model file, validated, without loading the model."""
    path = Path(path)
    names = _check_model_file(path)
    meta_name = next((n for n in names if n.endswith(f"/extra/{contract.METADATA_FILE}")), None)
    if meta_name is None:
        raise contract.ModelFileError(
            f"{path} is a {'package' if is_package(path) else 'TorchScript file'} but not a "
            f"gnnff model file (no "
            f"{contract.METADATA_FILE}); "
            f"{_HOW_TO_MAKE}"
        )
    with zipfile.ZipFile(path) as zf:
        meta: dict[str, Any] = json.loads(zf.read(meta_name).decode())
    contract.validate_metadata(meta, path)
    return meta


def load(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[Any, dict[str, Any]]:
    """Load an exported model: (module, metadata dict). A ``*.pt`` file gives the TorchScript
    module (on CPU; move it with ``.to``), a ``*.pt2`` package a
    ``gnnff.potentials.files.aoti.AOTIModel`` on ``device`` (ValueError, naming both and the export
    command to rerun, when the package was built for another device type or torch release)."""
    path = Path(path)
    meta = read_metadata(path)
    if is_package(path):
        from ..device import resolve_device
        from . import aoti

        dev = resolve_device(device)
        info = aoti.read_extra(path, aoti.INFO_FILE)
        if info is None:
            raise contract.ModelFileError(f"{path} lacks {aoti.INFO_FILE}; {_HOW_TO_MAKE}")
        aoti.check_package(path, info, dev)
        return aoti.AOTIModel(path, meta, info, dev), meta
    extra = {contract.METADATA_FILE: ""}
    module = torch.jit.load(  # type: ignore[no-untyped-call]
        str(path), map_location="cpu", _extra_files=extra
    )
    return module.eval(), meta


def eager_from_file(path: str | os.PathLike[str]) -> EdgeModel:
    """Rebuild the eager model of an exported file (config from its metadata, weights from the
    TorchScript module), e.g. to re-export it with another softmax backend or to inspect it."""
    if is_package(path):
        raise contract.ModelFileError(
            f"{path} is an AOTInductor package: its weights are compiled in and cannot be "
            "rebuilt into an eager model; use the TorchScript model file (.pt) or the checkpoint "
            "it was made from"
        )
    module, meta = load(path)
    cfg = copy.deepcopy(meta["hyperparameters"])
    model = build_model(cfg)
    state = {k.removeprefix("model."): v for k, v in module.state_dict().items()}
    # the softmax backend is rebuilt from its recorded name and bits; its buffers (e.g. LUT
    # tables) are taken from the file where they fit
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model = model.to(getattr(torch, meta.get("dtype", "float64")))
    model.load_state_dict(state, strict=False)
    missing = [k for k in own if k not in state and ".softmax." not in k]
    if missing:
        raise contract.ModelFileError(
            f"{path}: weights missing for {missing[:5]}; the file does not match its own metadata"
        )
    dtype = getattr(torch, meta.get("dtype", "float64"))
    return model.to(dtype).eval()
