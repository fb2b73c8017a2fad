"""Writing model files: a copy of an eager model, in the dtype and softmax backend asked for,
as a TorchScript file or an AOTInductor package with the contract's metadata."""

import copy
import io
import json
import os
from pathlib import Path
from typing import Any

import torch

from gnnff.io_utils import atomic_write

from .. import contract
from ..base import EdgeModel
from ..build import build_model
from ..softmax import backend_spec
from .checkpoint import float_dtype
from .exported import ExportedModel
from .formats import check_format

MODEL_FORMAT = contract.FORMAT
MODEL_FORMAT_VERSION = contract.FORMAT_VERSION

__all__ = ["MODEL_FORMAT", "MODEL_FORMAT_VERSION", "export_model", "softmax_spec_of"]


def softmax_spec_of(model: EdgeModel) -> dict[str, Any] | None:
    """``{"backend", "bits"}`` of the softmax backend the model actually runs (read from its
    modules, not its config), None for a model without one. ValueError when its layers run
    different backends (a model file records one)."""
    holders = model.softmax_holders().values()
    specs = [backend_spec(getattr(h, "softmax")) for h in holders]  # noqa: B009
    if not specs:
        return None
    if any(sp != specs[0] for sp in specs[1:]):
        raise ValueError(
            f"the model's layers run different softmax backends {specs}; set one backend for "
            "all of them (model.set_softmax_backend) before exporting"
        )
    return specs[0]


def _copy_model(model: EdgeModel) -> EdgeModel:
    """A float copy of ``model`` rebuilt from its config through its registered family, with
    the model's own softmax backends (deep copies: a backend swapped in at run time, with its
    tables and settings, is kept) and weights."""
    # rebuild from the config rather than deep-copying: a deep copy of scripted e3nn pieces
    # fails in processes where other packages changed e3nn's global settings
    m = build_model(copy.deepcopy(model.config))
    src, dst = model.softmax_holders(), m.softmax_holders()
    if set(src) != set(dst):
        raise ValueError(
            f"model family {model.family!r} rebuilt from its config has softmax backends at "
            f"{sorted(dst)}, the model at {sorted(src)}; the family's build must reproduce the "
            "model's structure from its config"
        )
    for name, holder in dst.items():
        holder.softmax = copy.deepcopy(getattr(src[name], "softmax"))  # noqa: B009
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    m = m.to(float_dtype(state))  # no rounding of float64 weights through float32
    m.load_state_dict(state)
    spec = softmax_spec_of(m)
    if spec is not None and "softmax" in m.config:
        m.config["softmax"] = spec
    return m.eval()


def _softmax_override(softmax: str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(softmax, str):
        return {"backend": softmax, "bits": None}
    return {"backend": softmax["backend"], "bits": softmax.get("bits")}


def export_model(
    model: EdgeModel,
    path: str | os.PathLike[str],
    dtype: str = "float64",
    training_summary: dict[str, Any] | None = None,
    softmax: str | dict[str, Any] | None = None,
    format: str = "torchscript",
    device: str = "cpu",
    max_atoms: int | None = None,
    max_edges: int | None = None,
) -> Path:
    """Write ``model`` (a copy in ``dtype``) atomically to ``path`` with its metadata, as a
    TorchScript file (``format="torchscript"``, ``*.pt``) or an AOTInductor package
    (``format="aoti"``, ``*.pt2``, compiled for ``device`` with at most ``max_atoms`` atoms
    and ``max_edges`` edges per call, None = unbounded; minutes, see
    ``gnnff.potentials.files.aoti``). The file reproduces the model it is given: its registered
    family and config, its weights and the softmax backend it runs (also one swapped in at run
    time), recorded as ``softmax`` {"backend", "bits"} in the metadata and the
    hyperparameters. ``softmax`` (a registered backend name or {"backend", "bits"}) exports
    with another backend instead (the source model is unchanged). ValueError for an unknown
    ``format`` or ``dtype``, or a path whose extension does not fit the format."""
    import gnnff

    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    check_format(format, path, device, max_atoms, max_edges)
    m = _copy_model(model)
    if softmax is not None:
        override = _softmax_override(softmax)
        if "softmax" in m.config:
            m.set_softmax_backend(override["backend"], override["bits"])
        elif override["backend"] != "float":
            raise ValueError(
                f"--softmax applies to families with an attention softmax (e.g. 'allegro-attn'); "
                f"{m.family!r} has none"
            )
    spec = softmax_spec_of(m)
    m = m.to(getattr(torch, dtype))
    for p in m.parameters():
        p.requires_grad_(False)
    meta = contract.make_metadata(
        species=list(m.species),
        cutoff=float(m.cutoff),
        family=m.family,
        hyperparameters=copy.deepcopy(m.config),
        dtype=dtype,
        softmax=spec if spec is not None else {"backend": "float", "bits": None},
        training=training_summary,
        gnnff_version=gnnff.__version__,
    )
    if format == "aoti":
        from . import aoti

        return atomic_write(
            path, lambda p: aoti.write_package(m, p, meta, device, max_atoms, max_edges)
        )
    scripted = torch.jit.script(ExportedModel(m))
    extra = {contract.METADATA_FILE: json.dumps(meta, indent=2)}
    return atomic_write(path, lambda p: save_torchscript(scripted, p, extra))


def save_torchscript(module: torch.jit.ScriptModule, path: Path, extra: dict[str, str]) -> None:
    """``torch.jit.save`` without the archive's ``*.debug_pkl`` records.

    Those records map TorchScript code to its source lines by the absolute path of every source
    file on the machine that exported (site-packages, the checkout), so a model file shared or
    committed would carry them; they only serve TorchScript's tracebacks, and the archive loads
    the same without them."""
    buf = io.BytesIO()
    torch.jit.save(module, buf, _extra_files=extra)
    buf.seek(0)
    reader = torch._C.PyTorchFileReader(buf)
    writer = torch._C.PyTorchFileWriter(str(path))
    for name in reader.get_all_records():
        if name.endswith(".debug_pkl"):
            continue
        data = reader.get_record(name)
        writer.write_record(name, data, len(data))
    writer.write_end_of_file()
