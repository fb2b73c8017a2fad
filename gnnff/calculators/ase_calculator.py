"""ASE calculator around an exported gnnff model file (the model contract of design.md)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes

from gnnff.errors import UsageError
from gnnff.potentials.bundled import model_file
from gnnff.potentials.device import configure_torchscript, resolve_device
from gnnff.potentials.neighbors import (
    COINCIDENT_TOL,
    coincident_pair,
    device_neighbor_list,
    neighbor_list,
)

from .memory import CPU_BLOCK_BYTES, CPU_BLOCK_EDGES, cpu_block_edges, keep_freed_memory

__all__ = [
    "CPU_BLOCK_BYTES",
    "CPU_BLOCK_EDGES",
    "GNNFFCalculator",
    "cpu_block_edges",
    "keep_freed_memory",
    "model_frame_positions",
]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


class GNNFFCalculator(Calculator):
    """Energy (eV), per-atom energies, forces (eV/A) and stress (eV/A^3, Voigt xx yy zz yz xz
    xy) from a gnnff model file: TorchScript (``*.pt``) or an AOTInductor package (``*.pt2``,
    chosen by the extension; see docs/model_contract.md, "Formats").

    ``model`` is a model file path or a ``(module, metadata)`` pair from
    ``gnnff.potentials.load``. A package runs on the device and in the dtype it was compiled
    for (a ValueError names the export command otherwise) and always in one pass. ``dtype``
    ("float32"/"float64") casts a TorchScript model; default: the dtype it was exported in.
    Periodic, mixed and open boundaries; any triclinic cell, including cells smaller than the
    cutoff (the neighbour list holds every image).
    ``max_block_edges`` bounds peak memory by differentiating the energy block by block (see
    ``gnnff.potentials.files.exported.ExportedModel``); results equal the one-pass ones to rounding.
    0 = one pass; None (default) = :func:`cpu_block_edges` on CPU (20,000 edges for a float32
    model of width 64, fewer for wider or float64 models: there blocks were both faster,
    1.2-1.6x, and 20-80x leaner than one pass in ``benchmarks/bench_memory_vs_nequip.py``),
    one pass on CUDA (where blocks cost ~13 %).
    Memory per atom: ``benchmarks/bench_memory.py``.
    ``device_neighbor_list`` builds the neighbour list on the model's device with vesin-torch
    (``pip install "gnnff[gpu]"``), so that the edges never cross from the host: None
    (default) = on CUDA when vesin-torch is installed, else on the host with vesin (the
    edges are the same, possibly in another order); True = always (MissingExtraError without
    vesin-torch); False = always on the host.
    """

    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(
        self,
        model: str | os.PathLike | tuple,
        device: str = "cpu",
        dtype: str | None = None,
        max_block_edges: int | None = None,
        device_neighbor_list: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        from gnnff.potentials import load

        self.device = resolve_device(device)
        self.device_neighbor_list = _use_device_neighbor_list(device_neighbor_list, self.device)
        if isinstance(model, (str, os.PathLike)):
            path = model_file(model)  # a path or a bundled model's name
            module, metadata = load(path, self.device)  # *.pt2: an AOTInductor package
            self._model_path: str | None = str(os.path.abspath(path))
        else:
            module, metadata = model
            self._model_path = getattr(module, "path", None)  # a package reloads from its file
        self.metadata = metadata
        self.species: list[str] = list(metadata["species"])
        self.cutoff = float(metadata["cutoff"])
        dtype = dtype or metadata.get("dtype", "float64")
        if dtype not in _DTYPES:
            raise UsageError(f"dtype must be float32 or float64, not {dtype!r}")
        self.is_package = not isinstance(module, torch.jit.ScriptModule) and hasattr(
            module, "runner"
        )
        if self.is_package:
            _check_package_options(module, dtype, max_block_edges)
        configure_torchscript(self.device)
        self.dtype = _DTYPES[dtype]
        self.module = module if self.is_package else module.to(self.device, self.dtype)
        if max_block_edges is not None and not self.is_package:
            if (
                isinstance(max_block_edges, bool)
                or not isinstance(max_block_edges, int)
                or max_block_edges < 0
            ):
                raise UsageError(
                    f"max_block_edges must be an integer >= 0 (0 = off), got {max_block_edges!r}"
                )
            if max_block_edges and not hasattr(self.module, "max_block_edges"):
                raise UsageError(
                    "this model file predates edge blocking (max_block_edges); "
                    "re-export it with `gnnff export` to use it"
                )
            if hasattr(self.module, "max_block_edges"):
                self.module.max_block_edges = max_block_edges
        elif (
            self.device.type == "cpu"
            and not self.is_package
            and hasattr(self.module, "max_block_edges")
        ):
            max_block_edges = cpu_block_edges(metadata.get("hyperparameters", {}), self.dtype)
            self.module.max_block_edges = max_block_edges
        self._max_block_edges = max_block_edges
        self._index = {s: k for k, s in enumerate(self.species)}
        keep_freed_memory()

    # ---- pickling: the TorchScript module is reloaded, not serialised by pickle (it cannot be)
    def __getstate__(self) -> dict[str, Any]:
        """Picklable state: the model file's path (or, for a model given as a module, its
        TorchScript bytes), device and dtype; the module is reloaded on unpickling, so atoms
        with this calculator can be sent to ``multiprocessing`` (``spawn``), joblib, ..."""
        state = self.__dict__.copy()
        module = state.pop("module")
        state["device"] = str(self.device)
        if self._model_path is None:
            import io
            import json

            buf = io.BytesIO()
            extra = {"metadata.json": json.dumps(self.metadata)}
            torch.jit.save(module, buf, _extra_files=extra)
            state["_model_bytes"] = buf.getvalue()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from gnnff.potentials import load

        blob = state.pop("_model_bytes", None)
        self.__dict__.update(state)
        self.device = resolve_device(state["device"])
        if blob is not None:
            import io

            module = torch.jit.load(io.BytesIO(blob), map_location="cpu")
        else:
            if not os.path.isfile(self._model_path):
                raise FileNotFoundError(
                    f"unpickling GNNFFCalculator: model file {self._model_path} is not there "
                    "(the calculator pickles the model's path); make the file available at that "
                    "path, or build the calculator from a (module, metadata) pair to pickle the "
                    "model itself"
                )
            module, _ = load(self._model_path, self.device)
        configure_torchscript(self.device)
        if getattr(self, "is_package", False):
            self.module = module
            return
        self.module = module.eval().to(device=self.device, dtype=self.dtype)
        if state.get("_max_block_edges") is not None:
            self.module.max_block_edges = state["_max_block_edges"]

    def species_indices(self, atoms: Atoms) -> np.ndarray:
        symbols = atoms.get_chemical_symbols()
        unknown = sorted(set(symbols) - set(self._index))
        if unknown:
            raise UsageError(
                f"the model knows only {self.species}; the structure also has "
                f"{unknown}. Use a model trained on these elements"
            )
        return np.fromiter((self._index[s] for s in symbols), dtype=np.int64, count=len(symbols))

    def _validate(self, atoms: Atoms) -> None:
        if len(atoms) == 0:
            raise UsageError("empty Atoms: nothing to compute")
        if not np.isfinite(atoms.positions).all():
            bad = np.flatnonzero(~np.isfinite(atoms.positions).all(axis=1))
            raise UsageError(f"non-finite positions for atoms {bad[:10].tolist()}")
        # a zero or degenerate cell along a periodic direction is caught by neighbor_list

    def _memory_advice(self, n_atoms: int, n_edges: int) -> str:
        blocks = self._max_block_edges or 0
        bound = (
            f"a smaller max_block_edges (now {blocks})"
            if blocks
            else "GNNFFCalculator(..., max_block_edges=200000), which bounds memory by "
            "differentiating the energy block by block at equal results"
        )
        cheaper = " or dtype='float32'" if self.dtype == torch.float64 else ""
        return (
            f"out of memory evaluating {n_atoms} atoms ({n_edges} edges within "
            f"{self.cutoff} A) on {self.device} in {str(self.dtype).replace('torch.', '')}: "
            f"use {bound}{cheaper}, or split the system over MPI ranks with LAMMPS "
            "(pair_style gnnff); benchmarks/bench_memory.py measures memory per atom"
        )

    def model_inputs(self, atoms: Atoms) -> dict[str, torch.Tensor]:
        """The contract's inputs for ``atoms`` (every atom is local); ``pos`` are the
        positions in the frame of :func:`model_frame_positions`."""
        self._validate(atoms)
        species = self.species_indices(atoms)
        positions = model_frame_positions(atoms.positions, atoms.cell.array, atoms.pbc)
        dev, dt = self.device, self.dtype
        if self.device_neighbor_list:
            edge_index, shift = device_neighbor_list(
                positions, atoms.cell.array, atoms.pbc, self.cutoff, dev
            )
            pos64 = torch.as_tensor(positions, device=dev)
            same = _coincident_pair_torch(pos64, edge_index, shift)
        else:
            edge_index, shift = neighbor_list(positions, atoms.cell.array, atoms.pbc, self.cutoff)
            same = coincident_pair(positions, edge_index, shift)
        if same is not None:
            raise UsageError(
                f"atoms {same[0]} and {same[1]} are at the same place "
                f"(distance {same[2]:.2e} A); remove the duplicate"
            )
        return {
            "pos": torch.as_tensor(positions, dtype=dt, device=dev),
            "species": torch.as_tensor(species, device=dev),
            "edge_index": torch.as_tensor(edge_index, device=dev),
            "edge_shift": torch.as_tensor(shift, dtype=dt, device=dev),
        }

    def calculate(
        self, atoms: Atoms | None = None, properties=("energy",), system_changes=all_changes
    ) -> None:
        Calculator.calculate(self, atoms, properties, system_changes)
        atoms = self.atoms
        inp = self.model_inputs(atoms)
        try:
            out = self.module(
                inp["pos"], inp["species"], inp["edge_index"], inp["edge_shift"], len(atoms)
            )
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            if not _is_out_of_memory(exc):
                raise
            raise MemoryError(self._memory_advice(len(atoms), inp["edge_index"].shape[1])) from exc
        energy = float(out["energy"].detach().cpu())
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "energies": out["atomic_energy"].detach().cpu().double().numpy(),
            "forces": out["forces"].detach().cpu().double().numpy(),
        }
        if atoms.pbc.any() and abs(atoms.cell.volume) > 1e-12:
            virial = out["virial"].detach().cpu().double().numpy()
            s = -virial / atoms.get_volume()
            self.results["stress"] = np.array(
                [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]]
            )
        elif "stress" in properties:
            raise PropertyNotImplementedError(
                "stress needs periodic boundaries and a cell with non-zero volume"
            )


def _use_device_neighbor_list(asked: bool | None, device: torch.device) -> bool:
    """Whether the calculator builds its neighbour list on ``device`` (see the class doc)."""
    import importlib.util

    if asked is None:
        return device.type == "cuda" and importlib.util.find_spec("vesin_torch") is not None
    if not isinstance(asked, bool):
        raise UsageError(f"device_neighbor_list must be True, False or None, got {asked!r}")
    if asked:
        from gnnff.errors import require_extra

        require_extra("vesin_torch", "gpu", "GNNFFCalculator(device_neighbor_list=True)")
    return asked


def _coincident_pair_torch(
    pos: torch.Tensor, edge_index: torch.Tensor, shift: torch.Tensor
) -> tuple[int, int, float] | None:
    """``coincident_pair`` on tensors of the device (one scalar comes back to the host)."""
    if edge_index.shape[1] == 0:
        return None
    vec = pos.index_select(0, edge_index[1]) - pos.index_select(0, edge_index[0]) + shift
    r2_min, at = torch.min((vec * vec).sum(1), 0)
    if float(r2_min) >= COINCIDENT_TOL**2:  # the one value that comes back to the host
        return None
    k = int(at)
    return int(edge_index[0, k]), int(edge_index[1, k]), float(r2_min.sqrt())


def _check_package_options(module: Any, dtype: str, max_block_edges: int | None) -> None:
    """ValueError for options an AOTInductor package cannot follow (its dtype is compiled in;
    it runs in one pass)."""
    built = module.metadata["dtype"]
    if dtype != built:
        raise UsageError(
            f"{module.path} is an AOTInductor package compiled in {built}; it cannot run in "
            f"{dtype}. Drop dtype= or re-export with `gnnff export CHECKPOINT --format aoti "
            f"--dtype {dtype} --out model.pt2`"
        )
    if max_block_edges:
        raise UsageError(
            "max_block_edges applies to TorchScript model files; an AOTInductor package "
            "runs in one pass (drop the option, or use the .pt file)"
        )


def model_frame_positions(positions: np.ndarray, cell: np.ndarray, pbc: Any) -> np.ndarray:
    """Positions [N,3] (A) as the model sees them, computed in float64: wrapped into the cell
    along periodic directions, then shifted so that their bounding box is centred on the
    origin. The energy is invariant under both (lattice translations of single atoms,
    one rigid translation), but a float32 model forms r_ij = pos[j] - pos[i] + shift from
    its own dtype: with positions near 1e4 A (an unwrapped trajectory, a box far from the
    origin) float32 rounding alone gave 5e-2 eV/A force errors (issue 29). Here the values
    are bounded by the cell or the cluster's size."""
    from ase.geometry import complete_cell

    pos = np.asarray(positions, dtype=np.float64)
    pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    cell = np.asarray(cell, dtype=np.float64)
    # a degenerate periodic cell is left to neighbor_list, which names the problem
    if pbc.any() and np.linalg.matrix_rank(cell[pbc], tol=1e-9) == pbc.sum():
        try:
            frac = np.linalg.solve(complete_cell(cell).T, pos.T).T
        except np.linalg.LinAlgError:
            frac = None
        if frac is not None:
            pos = pos - np.floor(frac[:, pbc]) @ cell[pbc]  # whole lattice vectors only
    return pos - 0.5 * (pos.min(axis=0) + pos.max(axis=0))


def _is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's allocation failures on CUDA or CPU (which raise RuntimeError)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text
