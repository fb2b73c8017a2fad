"""AOTInductor model packages (``.pt2``): the model contract compiled ahead of time.

TorchScript is deprecated in PyTorch >= 2.10; a ``.pt2`` package is the format that outlives
it. How it is built (torch 2.13): ``torch.export`` cannot trace ``torch.autograd.grad`` inside
a forward, so the energy *and its gradient* are first traced together into one flat ATen graph
with ``make_fx`` (symbolic shapes); that graph is exported with dynamic numbers of atoms and
edges and compiled by ``torch._inductor.aoti_compile_and_package``. The package holds the
compiled graph plus two extra files: ``metadata.json`` (the contract's metadata, the same as a
TorchScript file's) and ``aoti.json`` (:data:`PACKAGE_INFO_KEYS`: torch version, device, dtype,
shape bounds), which the loaders (this module, the LAMMPS plugin) check before loading.

The compiled graph takes ``(pos [N,3], species [N], edge_index [2,E], edge_shift [E,3])`` and
returns ``(atomic_energy [N], forces [N,3], virial [3,3], atomic_virial [N,3,3])`` for every
atom; :class:`AOTIModel` (and the plugin) wrap it in the contract's
``forward(pos, species, edge_index, edge_shift, n_local)``. The host appends two padding atoms
joined by two edges longer than the cutoff (they contribute exactly zero), so N >= 2 and
E >= 2 always (torch specialises sizes 0 and 1), then drops them from the outputs. Since an
atom's energy depends only on the edges it is the centre of, differentiating the sum over all
atoms gives the same forces as over the first n_local (ghosts are never centres).
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from .. import base, contract
from ..base import EdgeModel
from ..contract import METADATA_FILE

INFO_FILE = "aoti.json"
PACKAGE_INFO_KEYS = ("torch_version", "device", "dtype", "max_atoms", "max_edges")
PAD_ATOMS = 2  # padding atoms the host appends (also in the LAMMPS plugin)
PAD_LENGTH = 1.5  # padding edge length in cutoffs (>= 1: beyond the cutoff)


def torch_release(version: str | None = None) -> str:
    """``major.minor.patch`` of a torch version string (``2.13.0+cpu`` -> ``2.13.0``): the part a
    compiled package depends on."""
    return (version or torch.__version__).split("+")[0]


def export_command(device: str, dtype: str, extra: str = "") -> str:
    """The command that writes a package like this one for the installed torch."""
    dev = "" if device == "cpu" else f" --device {device}"
    return f"`gnnff export CHECKPOINT --format aoti{dev} --dtype {dtype}{extra} --out model.pt2`"


class _Graph(torch.nn.Module):
    """Atomic energies of all N atoms and their gradient in one traced function."""

    def __init__(self, model: EdgeModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        pos: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        shift: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        centre, neighbor = edge_index[0], edge_index[1]
        vec = (pos.index_select(0, neighbor) - pos.index_select(0, centre) + shift).detach()
        vec.requires_grad_(True)
        n = pos.shape[0]
        atomic, _ = self.model.energy_from_edges(vec, species, edge_index, n, False)
        g = torch.autograd.grad([atomic.sum()], [vec])[0]
        vec = vec.detach()
        forces = torch.zeros_like(pos).index_add(0, centre, g).index_add(0, neighbor, -g)
        edge_virial = -vec.unsqueeze(-1) * g.unsqueeze(-2)
        half = 0.5 * edge_virial
        atomic_virial = torch.zeros((n, 3, 3), dtype=pos.dtype, device=pos.device)
        atomic_virial = atomic_virial.index_add(0, centre, half).index_add(0, neighbor, half)
        return atomic.detach(), forces, edge_virial.sum(0), atomic_virial


def _example_inputs(
    num_species: int, cutoff: float, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, ...]:
    """A small valid input (6 atoms within the cutoff, every ordered pair an edge, padded):
    only its shapes' being > 1 and its values' being valid matter."""
    g = torch.Generator().manual_seed(0)
    n = 6
    pos = 0.2 * cutoff + 0.3 * cutoff * torch.rand(n, 3, generator=g, dtype=torch.float64)
    pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
    edge_index = torch.tensor(pairs, dtype=torch.int64).T.contiguous()
    species = torch.arange(n, dtype=torch.int64) % num_species
    shift = torch.zeros(len(pairs), 3, dtype=torch.float64)
    pos, species, edge_index, shift = pad_inputs(pos, species, edge_index, shift, cutoff)
    return (
        pos.to(device, dtype),
        species.to(device),
        edge_index.to(device),
        shift.to(device, dtype),
    )


def pad_inputs(
    pos: torch.Tensor,
    species: torch.Tensor,
    edge_index: torch.Tensor,
    shift: torch.Tensor,
    cutoff: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The inputs with :data:`PAD_ATOMS` atoms (species 0, at the origin) and two edges
    between them of length ``PAD_LENGTH * cutoff`` appended."""
    n = pos.shape[0]
    extra_pos = torch.zeros(PAD_ATOMS, 3, dtype=pos.dtype, device=pos.device)
    extra_edges = torch.tensor([[n, n + 1], [n + 1, n]], dtype=torch.int64, device=pos.device)
    extra_shift = torch.zeros(2, 3, dtype=shift.dtype, device=shift.device)
    extra_shift[0, 0] = PAD_LENGTH * cutoff
    extra_shift[1, 0] = -PAD_LENGTH * cutoff
    return (
        torch.cat([pos, extra_pos]),
        torch.cat([species, torch.zeros(PAD_ATOMS, dtype=species.dtype, device=species.device)]),
        torch.cat([edge_index, extra_edges], dim=1),
        torch.cat([shift, extra_shift]),
    )


def trace(
    model: EdgeModel,
    device: torch.device,
    max_atoms: int | None = None,
    max_edges: int | None = None,
) -> torch.export.ExportedProgram:
    """``model`` (weights frozen, in its dtype, on ``device``) as an exported program with
    dynamic N (up to ``max_atoms`` + padding) and E (up to ``max_edges`` + padding)."""
    from torch.fx.experimental.proxy_tensor import make_fx

    dtype: torch.dtype = model.per_species_shift.dtype  # type: ignore[assignment]
    graph = _Graph(model).to(device).eval()
    inputs = _example_inputs(len(model.species), float(model.cutoff), dtype, device)
    base._TRACING[0] = True
    try:
        flat = make_fx(graph, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*inputs)
    finally:
        base._TRACING[0] = False
    n_dim = torch.export.Dim(
        "num_atoms", min=PAD_ATOMS, max=None if max_atoms is None else max_atoms + PAD_ATOMS
    )
    e_dim = torch.export.Dim("num_edges", min=2, max=None if max_edges is None else max_edges + 2)
    dynamic = ({0: n_dim}, {0: n_dim}, {1: e_dim}, {0: e_dim})
    return torch.export.export(flat, inputs, dynamic_shapes=dynamic, strict=False)


def write_package(
    model: EdgeModel,
    path: Path,
    metadata: dict[str, Any],
    device: str = "cpu",
    max_atoms: int | None = None,
    max_edges: int | None = None,
) -> None:
    """Compile ``model`` (in its dtype) into the package ``path`` with ``metadata.json`` and
    ``aoti.json``. Minutes: the C++ compiler runs. ``path`` is written in place (callers pass
    a temporary file, see ``gnnff.io_utils.atomic_write``)."""
    dev = torch.device(device)
    model = model.to(dev)
    program = trace(model, dev, max_atoms, max_edges)
    info = {
        "torch_version": torch_release(),
        "device": dev.type,
        "dtype": metadata["dtype"],
        "max_atoms": max_atoms,
        "max_edges": max_edges,
    }
    with tempfile.TemporaryDirectory(prefix="gnnff-aoti-") as tmp:
        built = Path(tmp) / "model.pt2"
        torch._inductor.aoti_compile_and_package(program, package_path=str(built))
        with zipfile.ZipFile(built, "a", compression=zipfile.ZIP_STORED) as zf:
            root = zf.namelist()[0].split("/", 1)[0]
            zf.writestr(f"{root}/extra/{METADATA_FILE}", json.dumps(metadata, indent=2))
            zf.writestr(f"{root}/extra/{INFO_FILE}", json.dumps(info, indent=2))
        Path(path).write_bytes(built.read_bytes())


def read_extra(path: Path, name: str) -> dict[str, Any] | None:
    """The JSON extra file ``name`` of the package ``path`` (None when absent)."""
    with zipfile.ZipFile(path) as zf:
        member = next((n for n in zf.namelist() if n.endswith(f"/extra/{name}")), None)
        if member is None:
            return None
        value: dict[str, Any] = json.loads(zf.read(member).decode())
        return value


def check_package(path: Path, info: dict[str, Any], device: torch.device) -> None:
    """ModelFileError (a ValueError) when the package ``path`` (its ``aoti.json`` = ``info``)
    cannot run here: built for another torch release or another device type than ``device``."""
    built_torch, built_dev = info.get("torch_version"), info.get("device")
    redo = export_command(device.type, info.get("dtype", "float64"))
    if built_torch != torch_release():
        raise contract.ModelFileError(
            f"{path} was compiled for torch {built_torch}, but this is torch "
            f"{torch_release()}: AOTInductor packages run only on the torch release that built "
            f"them. Re-export it here with {redo} (a TorchScript .pt file keeps loading)"
        )
    if built_dev != device.type:
        raise contract.ModelFileError(
            f"{path} was compiled for device {built_dev!r}, but it is asked to run on "
            f"{device.type!r}: re-export it with {redo}, or run it on {built_dev!r}"
        )


class AOTIModel(torch.nn.Module):
    """A ``.pt2`` package behind the contract's ``forward(pos, species, edge_index,
    edge_shift, n_local) -> dict`` (the same outputs as the TorchScript module). Inputs are
    checked on the host (the compiled graph cannot raise): species range, centres < n_local,
    no zero-length edge, the package's shape bounds."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        metadata: dict[str, Any],
        info: dict[str, Any],
        device: torch.device,
    ) -> None:
        super().__init__()
        self.path = str(path)
        self.metadata = metadata
        self.info = info
        self.device = device
        self.dtype: torch.dtype = getattr(torch, info.get("dtype", metadata["dtype"]))
        self.cutoff = float(metadata["cutoff"])
        self.num_species = len(metadata["species"])
        index = -1 if device.index is None else device.index
        self.runner = torch._inductor.aoti_load_package(self.path, device_index=index)

    def _check(
        self,
        n: int,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        vec: torch.Tensor,
        n_local: int,
    ) -> None:
        if n_local < 0 or n_local > n:
            raise contract.ModelFileError(f"n_local must lie in [0, N]; got {n_local}")
        if n and (int(species.min()) < 0 or int(species.max()) >= self.num_species):
            raise contract.ModelFileError(
                f"species index out of range: the model knows {self.num_species} species "
                f"{self.metadata['species']}"
            )
        if edge_index.shape[1] and int(edge_index[0].max()) >= n_local:
            raise contract.ModelFileError("edge_index row 0 (centres) must be < n_local")
        if edge_index.shape[1] and bool((vec.norm(dim=1) <= 0.0).any()):
            raise contract.ModelFileError(
                "an edge has zero length: two atoms sit at the same position; remove the duplicate"
            )
        for what, size, key, flag in (
            ("atoms", n, "max_atoms", "--max-atoms"),
            ("edges", edge_index.shape[1], "max_edges", "--max-edges"),
        ):
            bound = self.info.get(key)
            if bound is not None and size > bound:
                raise contract.ModelFileError(
                    f"{size} {what} exceed the bound {key}={bound} that {self.path} was "
                    f"exported with; re-export it with a larger one: "
                    + export_command(
                        self.device.type, str(self.info.get("dtype")), f" {flag} {2 * size}"
                    )
                )

    def forward(
        self,
        pos: torch.Tensor,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        edge_shift: torch.Tensor,
        n_local: int,
    ) -> dict[str, torch.Tensor]:
        dev, dt = self.device, self.dtype
        pos = pos.to(dev, dt)
        edge_shift = edge_shift.to(dev, dt)
        species = species.to(dev)
        edge_index = edge_index.to(dev)
        n = pos.shape[0]
        vec = pos.index_select(0, edge_index[1]) - pos.index_select(0, edge_index[0]) + edge_shift
        self._check(n, species, edge_index, vec, n_local)
        padded = pad_inputs(pos, species, edge_index, edge_shift, self.cutoff)
        with torch.no_grad():
            atomic, forces, virial, atomic_virial = self.runner(*padded)
        atomic = atomic[:n_local]
        return {
            "energy": atomic.sum(),
            "atomic_energy": atomic,
            "forces": forces[:n],
            "virial": virial,
            "atomic_virial": atomic_virial[:n],
        }
