"""Checkpoints (training writes, export reads) and the exported TorchScript model file that
implements the model contract (``gnnff.potentials.contract``, docs/model_contract.md)."""

import copy
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from gnnff.errors import UsageError
from gnnff.io_utils import atomic_write

from . import contract
from .base import EdgeModel
from .model import build_model
from .softmax import backend_spec

MODEL_FORMAT = contract.FORMAT
MODEL_FORMAT_VERSION = contract.FORMAT_VERSION
CHECKPOINT_FORMAT = "gnnff-checkpoint"
CHECKPOINT_FORMAT_VERSION = 1
_HOW_TO_MAKE = contract.HOW_TO_MAKE


class ExportedModel(torch.nn.Module):
    """The contract's forward: energies, forces, virial and per-atom virial from one autograd
    pass through the edge vectors.

    ``max_block_edges`` (0 = off) bounds memory: the centres are split into blocks of at most
    about that many edges (a centre's edges always stay together, so a block can exceed it by
    one centre's neighbours) and each block's energy is differentiated on its own, its graph
    freed before the next. The potential is strictly local (an atom's energy depends only on its
    own edges), so the result equals the one-pass result up to summation order; peak memory
    scales with the block instead of the system. Set it on a loaded module
    (``module.max_block_edges = 50000``) or through ``GNNFFCalculator(max_block_edges=...)``."""

    def __init__(self, model: EdgeModel) -> None:
        super().__init__()
        self.model = model
        self.max_block_edges: int = 0

    def _blocked_gradient(
        self,
        vec: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        n: int,
        n_local: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(atomic energies [n_local], dE/dvec [E,3]) block by block."""
        centre = edge_index[0]
        shift: torch.Tensor = self.model.per_species_shift  # type: ignore[assignment]
        base = shift.index_select(0, species)
        counts = torch.bincount(centre, minlength=n)
        start = torch.cumsum(counts, 0) - counts
        block_of_centre = torch.div(start, self.max_block_edges, rounding_mode="floor")
        edge_block = block_of_centre.index_select(0, centre)
        g = torch.zeros_like(vec)
        atomic = base.clone()
        n_blocks = int(edge_block.max()) + 1
        for b in range(n_blocks):
            idx = torch.nonzero(edge_block == b).reshape(-1)
            if idx.numel() == 0:
                continue
            vb = vec.index_select(0, idx).requires_grad_(True)
            ab, _ = self.model.energy_from_edges(
                vb, species, edge_index.index_select(1, idx), n, False
            )
            part = (ab - base)[:n_local]
            eb = part.sum()
            if eb.requires_grad:
                gb = torch.autograd.grad([eb], [vb], allow_unused=True)[0]
                if gb is not None:
                    g = g.index_copy(0, idx, gb)
            atomic = atomic + torch.cat(
                [part.detach(), torch.zeros(n - n_local, dtype=part.dtype, device=part.device)]
            )
        return atomic[:n_local], g

    def forward(
        self,
        pos: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        edge_shift: torch.Tensor,
        n_local: int,
    ) -> dict[str, torch.Tensor]:
        # mypy sees registered buffers as Tensor | Module (potentials.model is not yet strict)
        dtype: torch.dtype = self.model.per_species_shift.dtype  # type: ignore[assignment]
        pos = pos.to(dtype)
        edge_shift = edge_shift.to(dtype)
        n = pos.shape[0]
        if n_local < 0 or n_local > n:
            raise ValueError("n_local must lie in [0, N]; got " + str(n_local))
        centre = edge_index[0]
        neighbor = edge_index[1]
        if edge_index.shape[1] > 0 and int(centre.max()) >= n_local:
            raise ValueError("edge_index row 0 (centres) must be < n_local")
        if not torch.is_grad_enabled():
            raise RuntimeError(
                "gnnff models compute forces with autograd: call them with gradients enabled "
                "(not inside torch.no_grad() or torch.inference_mode())"
            )
        vec = pos.detach().index_select(0, neighbor) - pos.detach().index_select(0, centre)
        vec = vec + edge_shift.detach()
        g: torch.Tensor | None = None
        if 0 < self.max_block_edges < vec.shape[0]:
            atomic, g = self._blocked_gradient(vec, species, edge_index, n, n_local)
            energy = atomic.sum()
        else:
            vec = vec.requires_grad_(True)
            atomic, _ = self.model.energy_from_edges(vec, species, edge_index, n, False)
            atomic = atomic[:n_local]
            energy = atomic.sum()
            if energy.requires_grad:
                g = torch.autograd.grad([energy], [vec], allow_unused=True)[0]
        if g is None:
            g = torch.zeros_like(vec)
        vec = vec.detach()
        forces = torch.zeros((n, 3), dtype=dtype, device=pos.device)
        forces = forces.index_add(0, centre, g).index_add(0, neighbor, -g)
        edge_virial = -vec.unsqueeze(-1) * g.unsqueeze(-2)  # [E, 3, 3]
        half = 0.5 * edge_virial
        atomic_virial = torch.zeros((n, 3, 3), dtype=dtype, device=pos.device)
        atomic_virial = atomic_virial.index_add(0, centre, half).index_add(0, neighbor, half)
        return {
            "energy": energy.detach(),
            "atomic_energy": atomic.detach(),
            "forces": forces,
            "virial": edge_virial.sum(0),
            "atomic_virial": atomic_virial,
        }


def _float_dtype(state: dict[str, torch.Tensor]) -> torch.dtype:
    """The floating dtype of a state dict (float32 when it has no floating tensor)."""
    return next((v.dtype for v in state.values() if v.is_floating_point()), torch.float32)


# ------------------------------------------------------------------ checkpoints
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
        if _is_torchscript(path):
            raise contract.ModelFileError(
                f"{path} is an exported model file, not a training checkpoint; export needs the "
                "checkpoint written by `gnnff train`"
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
    model = model.to(_float_dtype(state))  # no rounding of float64 weights through float32
    model.load_state_dict(state)
    model.config["avg_num_neighbors"] = float(model.avg_num_neighbors)  # type: ignore[arg-type]
    return model.eval()


# ------------------------------------------------------------------ model files
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
    m = m.to(_float_dtype(state))  # no rounding of float64 weights through float32
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
    ``gnnff.potentials.aoti``). The file reproduces the model it is given: its registered
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
    return atomic_write(path, lambda p: torch.jit.save(scripted, str(p), _extra_files=extra))


def check_format(
    format: str,
    path: str | os.PathLike[str],
    device: str = "cpu",
    max_atoms: int | None = None,
    max_edges: int | None = None,
) -> None:
    """UsageError (a ValueError), before anything is compiled or written, for an unknown
    ``format`` (listing the valid ones), a ``path`` whose extension is the other format's
    (loaders pick the format by extension), options of the other format, or bounds < 1."""
    if format not in contract.FORMATS:
        raise UsageError(
            f"unknown model format {format!r}; valid formats: {', '.join(contract.FORMATS)}"
        )
    suffix = Path(path).suffix
    want = contract.FORMAT_SUFFIX[format]
    other = [f for f, s in contract.FORMAT_SUFFIX.items() if s == suffix and f != format]
    if other or (format == "aoti" and suffix != want):
        raise UsageError(
            f"{path}: a model file of format {format!r} must end in {want} (loaders choose "
            "the format by "
            f"the extension); use --out {Path(path).with_suffix(want).name}"
        )
    if format == "torchscript" and (device != "cpu" or max_atoms or max_edges):
        raise UsageError(
            "--device, --max-atoms and --max-edges apply to --format aoti; a TorchScript file "
            "runs on any device and size"
        )
    for name, bound in (("max_atoms", max_atoms), ("max_edges", max_edges)):
        if bound is not None and (isinstance(bound, bool) or int(bound) < 1):
            raise UsageError(f"{name} must be a positive integer or None, got {bound!r}")
    if format == "aoti":
        from .device import resolve_device

        resolve_device(device)  # a CUDA package needs a GPU where it is compiled


def _zip_names(path: Path) -> list[str] | None:
    if not zipfile.is_zipfile(path):
        return None
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def _is_torchscript(path: Path) -> bool:
    names = _zip_names(path)
    return names is not None and any(n.endswith("/constants.pkl") for n in names)


def is_package(path: str | os.PathLike[str]) -> bool:
    """True for a path named as an AOTInductor package (``*.pt2``)."""
    return Path(path).suffix == contract.FORMAT_SUFFIX["aoti"]


def _check_model_file(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist; {_HOW_TO_MAKE}")
    names = _zip_names(path)
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
    ``gnnff.potentials.aoti.AOTIModel`` on ``device`` (ValueError, naming both and the export
    command to rerun, when the package was built for another device type or torch release)."""
    path = Path(path)
    meta = read_metadata(path)
    if is_package(path):
        from . import aoti
        from .device import resolve_device

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
            "rebuilt into an eager model; use the TorchScript file or the checkpoint"
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
