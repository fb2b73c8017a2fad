"""Shared helpers for the LAMMPS plugin tests and benchmark.

- :func:`write_toy_model`: a small strictly-local many-body TorchScript model that follows the
  gnnff model contract exactly (EAM-like: E_i = e0 + pair repulsion + embedding F(rho_i)).
  Any contract-following model file can be used in its place.
- :func:`sio2_like_cell`, :func:`write_lammps_data`: a triclinic SiO2-like test structure.
- :func:`reference_results`: the model called directly on the periodic structure with a
  brute-force (vesin) neighbour list: the ground truth LAMMPS must reproduce.
- :func:`run_lammps`: runs a list of LAMMPS commands and gathers results; it runs in-process
  or as the MPI worker ``mpirun -np N python tests/lammps_fixtures.py SPEC.json OUT.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

NKTV2P_METAL = 1.6021765e6  # LAMMPS metal units: eV/A^3 -> bar


def write_toy_model(
    path: str | Path,
    species: tuple[str, ...] = ("O", "Si"),
    cutoff: float = 4.0,
    dtype: str = "float64",
    with_metadata: bool = True,
    training: dict | None = None,
    drop_keys: tuple[str, ...] = (),
    extra_keys: dict | None = None,
) -> Path:
    """Save a toy many-body gnnff model (TorchScript + metadata.json, with ``training`` as
    its training summary) to ``path``; its metadata comes from the contract
    (``gnnff.potentials.contract.make_metadata``) less ``drop_keys`` plus ``extra_keys``."""
    import torch

    from gnnff.potentials import contract

    tdtype = torch.float64 if dtype == "float64" else torch.float32
    ns = len(species)

    class ToyManyBody(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            g = torch.Generator().manual_seed(1234)
            a = 0.5 + torch.rand(ns, ns, generator=g, dtype=torch.float64)
            self.register_buffer("rep", (40.0 * (a + a.T)).to(tdtype))  # eV, symmetric
            self.register_buffer("dens", (0.5 + torch.rand(ns, generator=g)).to(tdtype))
            self.register_buffer("emb", (1.0 + torch.rand(ns, generator=g)).to(tdtype))
            self.register_buffer("e0", (-torch.rand(ns, generator=g)).to(tdtype))
            self.cutoff = float(cutoff)

        def forward(
            self,
            pos: torch.Tensor,
            species: torch.Tensor,
            edge_index: torch.Tensor,
            edge_shift: torch.Tensor,
            n_local: int,
        ) -> dict[str, torch.Tensor]:
            i = edge_index[0]
            j = edge_index[1]
            vec = (pos[j] - pos[i] + edge_shift).detach().requires_grad_(True)
            r = torch.sqrt((vec * vec).sum(1) + 1e-30)
            x = (1.0 - (r / self.cutoff) ** 2).clamp(min=0.0)
            fc = x * x * x  # smooth: value and first two derivatives vanish at the cutoff
            si = species[i]
            sj = species[j]
            pair = 0.5 * self.rep[si, sj] * torch.exp(-r / 0.35) * fc
            rho_e = self.dens[sj] * torch.exp(-(r - 1.6)) * fc
            rho = torch.zeros(n_local, dtype=pos.dtype, device=pos.device).index_add(0, i, rho_e)
            epair = torch.zeros(n_local, dtype=pos.dtype, device=pos.device).index_add(0, i, pair)
            sl = species[:n_local]
            atomic = self.e0[sl] + epair - self.emb[sl] * (torch.sqrt(1.0 + rho) - 1.0)
            energy = atomic.sum()
            grads = torch.autograd.grad([energy], [vec], allow_unused=True)
            g = grads[0]
            if g is None:
                g = torch.zeros_like(vec)
            n = pos.shape[0]
            forces = torch.zeros(n, 3, dtype=pos.dtype, device=pos.device)
            forces = forces.index_add(0, i, g).index_add(0, j, -g)
            w = -vec.detach().unsqueeze(2) * g.unsqueeze(1)  # [E,3,3] edge virials
            atomic_virial = torch.zeros(n, 3, 3, dtype=pos.dtype, device=pos.device)
            atomic_virial = atomic_virial.index_add(0, i, 0.5 * w).index_add(0, j, 0.5 * w)
            return {
                "energy": energy.detach(),
                "atomic_energy": atomic.detach(),
                "forces": forces,
                "virial": w.sum(0),
                "atomic_virial": atomic_virial,
            }

    module = torch.jit.script(ToyManyBody())
    meta = contract.make_metadata(
        species=list(species), cutoff=float(cutoff), family="toy-eam", hyperparameters={},
        dtype=dtype, softmax={"backend": "float", "bits": None}, training=training,
        gnnff_version="test",
    )  # fmt: skip
    meta = {k: v for k, v in meta.items() if k not in drop_keys} | (extra_keys or {})
    path = Path(path)
    extra = {contract.METADATA_FILE: json.dumps(meta)} if with_metadata else {}
    torch.jit.save(module, str(path), _extra_files=extra)
    return path


def sio2_like_cell(rep: tuple[int, int, int] = (2, 2, 2), seed: int = 0, rattle: float = 0.05):
    """alpha-quartz-like SiO2 supercell (9 atoms per cell) with a generic triclinic cell that
    is already in LAMMPS' lower-triangular form (a along x, b in the xy plane)."""
    from ase import Atoms

    a, c = 4.916, 5.405
    u, x, y, z = 0.4697, 0.4135, 0.2669, 0.1191
    frac_si = [(u, 0, 0), (0, u, 2 / 3), (-u, -u, 1 / 3)]
    frac_o = [
        (x, y, z), (-y, x - y, z + 2 / 3), (-x + y, -x, z + 1 / 3),
        (y, x, -z), (x - y, -y, -z + 1 / 3), (-x, -x + y, -z + 2 / 3),
    ]  # fmt: skip
    cell = np.array([[a, 0, 0], [-0.5 * a, np.sqrt(3) / 2 * a, 0], [0, 0, c]])
    rng = np.random.default_rng(seed)
    cell = cell + np.tril(rng.uniform(-0.08, 0.08, (3, 3)))  # generic, still lower-triangular
    frac = np.array(frac_si + frac_o) % 1.0
    unit = Atoms(["Si"] * 3 + ["O"] * 6, scaled_positions=frac, cell=cell, pbc=True)
    atoms = unit.repeat(rep)
    atoms.positions += rng.normal(0.0, rattle, atoms.positions.shape)
    atoms.wrap()
    return atoms


def write_lammps_data(atoms, path: str | Path, species: tuple[str, ...]) -> Path:
    from gnnff.lammps.geometry import write_lammps_data as write

    return write(atoms, path, species)


def reference_results(model_path: str | Path, atoms) -> dict:
    """Energy (eV), per-atom energies [N], forces [N,3] (eV/A) and ASE stress (Voigt xx yy zz
    yz xz xy, eV/A^3) from calling the TorchScript model directly with a periodic neighbour
    list."""
    import torch

    from gnnff.potentials.neighbors import neighbor_list

    extra = {"metadata.json": ""}
    model = torch.jit.load(str(model_path), _extra_files=extra)
    meta = json.loads(extra["metadata.json"])
    dt = torch.float64 if meta["dtype"] == "float64" else torch.float32
    ei, sh = neighbor_list(atoms.positions, np.asarray(atoms.cell), atoms.pbc, meta["cutoff"])
    species = torch.tensor([meta["species"].index(s) for s in atoms.get_chemical_symbols()])
    out = model(
        torch.tensor(atoms.positions, dtype=dt),
        species,
        torch.from_numpy(ei),
        torch.tensor(sh, dtype=dt),
        len(atoms),
    )
    v = out["virial"].double().numpy()
    vol = atoms.get_volume()
    stress = -np.array([v[0, 0], v[1, 1], v[2, 2], v[1, 2], v[0, 2], v[0, 1]]) / vol
    return {
        "energy": float(out["energy"]),
        "energies": out["atomic_energy"].double().numpy(),
        "forces": out["forces"].double().numpy(),
        "stress": stress,
    }


def lammps_pressure_to_ase_stress(p_bar) -> np.ndarray:
    """LAMMPS pressure tensor (bar; xx yy zz xy xz yz) -> ASE stress (eV/A^3; xx yy zz yz xz
    xy). Stress is minus pressure."""
    p = np.asarray(p_bar, dtype=float) / NKTV2P_METAL
    return -np.array([p[0], p[1], p[2], p[5], p[4], p[3]])


def run_lammps(spec: dict, comm=None) -> dict | None:
    """Run ``spec["commands"]`` (list of LAMMPS input lines, after an optional
    ``plugin load``), then gather ``spec["gather"]`` ("name:count" understood by
    ``lammps.gather``, e.g. "f:3", "x:3", "c_pe:1") ordered by atom ID and
    ``spec["computes"]`` (global compute vectors as "ID:length", scalars as "ID").
    Returns the results on rank 0 (None elsewhere); a LAMMPS error gives {"error": message}."""
    from gnnff.lammps.library import new_lammps

    lmp = new_lammps(comm=comm) if comm is not None else new_lammps()
    res: dict = {}
    try:
        if spec.get("plugin"):
            lmp.command(f"plugin load {spec['plugin']}")
        for line in spec["commands"]:
            lmp.command(line)
        res["nprocs"] = lmp.extract_setting("world_size")
        nlocal = lmp.extract_setting("nlocal")
        res["nlocal"] = [nlocal] if comm is None else comm.gather(nlocal, root=0)
        for item in spec.get("gather", []):
            name, _, count_s = item.partition(":")
            count = int(count_s) if count_s else 1
            arr = np.ctypeslib.as_array(lmp.gather(name, 1, count)).reshape(-1, count)
            res[name] = arr.tolist()
        for item in spec.get("computes", []):
            cid, _, length = item.partition(":")
            if length:
                res[cid] = [lmp.extract_compute(cid, 0, 1)[k] for k in range(int(length))]
            else:
                res[cid] = lmp.extract_compute(cid, 0, 0)
    except Exception as exc:  # noqa: BLE001 - report the LAMMPS message to the test
        res["error"] = str(exc)
    finally:
        lmp.close()
    me = 0 if comm is None else comm.Get_rank()
    return res if me == 0 else None


def _worker(spec_path: str, out_path: str) -> None:
    from mpi4py import MPI

    spec = json.loads(Path(spec_path).read_text())
    res = run_lammps(spec, comm=MPI.COMM_WORLD)
    if res is not None:
        Path(out_path).write_text(json.dumps(res))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    _worker(sys.argv[1], sys.argv[2])
