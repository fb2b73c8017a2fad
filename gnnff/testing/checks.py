"""Physics checks of a model that follows the model contract (docs/model_contract.md).

Every check takes a :class:`ContractModel` (a callable ``forward(pos, species, edge_index,
edge_shift, n_local) -> dict`` plus its species, cutoff and dtype) and ``ase.Atoms``, and raises
``AssertionError`` naming what failed. They hold for any strictly-local, conservative,
E(3)-invariant energy model; use them in an extension package's tests (or through
:class:`gnnff.testing.ModelContractTests`).

Sources: forces and virial as derivatives of the energy (central differences, error O(h^2));
the virial convention W = -sum_edges r_ij (x) dE/dr_ij, i.e. dE/d(strain) = -W^T (Thompson,
Plimpton & Mattson, J. Chem. Phys. 131, 154107 (2009)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gnnff.potentials import contract
from gnnff.potentials.neighbors import neighbor_list

Forward = Callable[..., dict[str, torch.Tensor]]


@dataclass
class ContractModel:
    """A model under test: ``forward`` (eager or TorchScript) with the contract's signature,
    the element symbols its species indices refer to, its cutoff (A) and float dtype."""

    forward: Forward
    species: list[str]
    cutoff: float
    dtype: torch.dtype = torch.float64

    def inputs(
        self, atoms: Any, positions: np.ndarray | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """Contract inputs for ``atoms`` (neighbour list at ``atoms``' own positions; pass
        ``positions`` to evaluate displaced positions on that same edge list)."""
        ei, sh = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, self.cutoff)
        pos = atoms.positions if positions is None else positions
        index = {s: k for k, s in enumerate(self.species)}
        unknown = sorted(set(atoms.get_chemical_symbols()) - set(index))
        if unknown:
            raise ValueError(f"atoms hold {unknown}, the model knows {self.species}")
        species = torch.tensor([index[s] for s in atoms.get_chemical_symbols()])
        return (torch.tensor(pos, dtype=self.dtype), species, torch.from_numpy(ei),
                torch.tensor(sh, dtype=self.dtype), len(atoms))  # fmt: skip

    def __call__(self, atoms: Any, positions: np.ndarray | None = None) -> dict[str, Any]:
        return self.forward(*self.inputs(atoms, positions))


def _tol(reference: np.ndarray, atol: float) -> float:
    return atol * max(1.0, float(np.abs(reference).max()))


def check_outputs(model: ContractModel, atoms: Any) -> dict[str, torch.Tensor]:
    """Outputs have the contract's keys, shapes and dtype, are finite, and add up
    (energy = sum of atomic_energy, virial = sum of atomic_virial). Returns the outputs."""
    out = model(atoms)
    n = len(atoms)
    contract.check_outputs(out, n=n, n_local=n, dtype=model.dtype)
    for key, value in out.items():
        assert torch.isfinite(value).all(), f"output {key!r} is not finite"
    tol = 1e-4 if model.dtype == torch.float32 else 1e-10
    e, ae = float(out["energy"]), out["atomic_energy"].double()
    assert abs(e - float(ae.sum())) <= tol * max(1.0, abs(e)), "energy != sum(atomic_energy)"
    v = out["virial"].double()
    assert torch.allclose(out["atomic_virial"].double().sum(0), v, atol=tol * max(1.0, float(
        v.abs().max()))), "virial != sum(atomic_virial)"  # fmt: skip
    return out


def check_forces_finite_difference(
    model: ContractModel, atoms: Any, eps: float = 1e-3, atol: float = 2e-6,
    atoms_to_check: list[int] | None = None,
) -> None:  # fmt: skip
    """forces = -dE/dpos by central differences (step ``eps`` A) on the same edge list; float64
    models only. ``atol`` is relative to max(1, max |F|)."""
    out = model(atoms)
    forces = out["forces"].detach().double().numpy()
    assert np.abs(forces).max() > 1e-6, "all forces vanish: the check would prove nothing"
    which = range(len(atoms)) if atoms_to_check is None else atoms_to_check
    fd = np.zeros_like(forces)
    for a in which:
        for d in range(3):
            energies = []
            for step in (eps, -eps):
                p = atoms.positions.copy()
                p[a, d] += step
                energies.append(float(model(atoms, p)["energy"]))
            fd[a, d] = -(energies[0] - energies[1]) / (2 * eps)
    rows = list(which)
    np.testing.assert_allclose(
        forces[rows],
        fd[rows],
        atol=_tol(fd, atol),
        rtol=1e-4,
        err_msg="forces differ from -dE/dpos (central differences)",
    )


def check_virial_strain_derivative(
    model: ContractModel, atoms: Any, h: float = 1e-4, atol: float = 1e-6
) -> None:
    """virial = -(dE/d strain)^T by central differences of a homogeneous deformation
    F = 1 + e applied to positions and periodic shifts; the virial is symmetric."""
    pos, species, ei, shift, n = model.inputs(atoms)
    out = model.forward(pos, species, ei, shift, n)
    d_e = np.zeros((3, 3))
    for a in range(3):
        for b in range(3):
            energies = []
            for s in (h, -h):
                f = torch.eye(3, dtype=torch.float64)
                f[a, b] += s
                ft = f.T.to(model.dtype)
                energies.append(float(model.forward(pos @ ft, species, ei, shift @ ft, n)
                                      ["energy"]))  # fmt: skip
            d_e[a, b] = (energies[0] - energies[1]) / (2 * h)
    virial = out["virial"].detach().double().numpy()
    np.testing.assert_allclose(
        virial, -d_e.T, atol=_tol(d_e, atol), err_msg="virial differs from -(dE/d strain)^T"
    )
    np.testing.assert_allclose(
        virial, virial.T, atol=_tol(virial, 1e-9), err_msg="virial is not symmetric"
    )


def check_rotation_equivariance(
    model: ContractModel, atoms: Any, seed: int = 3, atol: float = 1e-10
) -> None:
    """A rotation, a rotation with reflection and a translation leave energies unchanged and
    rotate forces (F -> R F) and the virial (W -> R W R^T)."""
    pos, species, ei, shift, n = model.inputs(atoms)
    base = model.forward(pos, species, ei, shift, n)
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    for rot in (q, -q):  # det(-q) = -det(q): one of the two reflects
        r = torch.tensor(rot, dtype=model.dtype)
        out = model.forward(pos @ r.T, species, ei, shift @ r.T, n)
        for key, want in (("atomic_energy", base["atomic_energy"]),
                          ("forces", base["forces"] @ r.T),
                          ("virial", r @ base["virial"] @ r.T)):  # fmt: skip
            err = float((out[key] - want).abs().max())
            assert err <= atol * max(1.0, float(want.abs().max())), (
                f"{key} not equivariant under an orthogonal map (det {np.linalg.det(rot):+.0f})"
                f": max error {err:.2e}")  # fmt: skip
    t = torch.tensor([3.1, -2.0, 7.7], dtype=model.dtype)
    out = model.forward(pos + t, species, ei, shift, n)
    assert torch.allclose(out["forces"], base["forces"], atol=atol * 10), "translation changed F"


def check_permutation_invariance(model: ContractModel, atoms: Any, seed: int = 5) -> None:
    """Relabelling atoms permutes per-atom outputs and leaves the energy unchanged."""
    base = model(atoms)
    perm = np.random.default_rng(seed).permutation(len(atoms))
    out = model(atoms[perm])
    assert torch.allclose(out["energy"], base["energy"], atol=1e-10, rtol=1e-10)
    assert torch.allclose(out["atomic_energy"], base["atomic_energy"][perm], atol=1e-10)
    assert torch.allclose(out["forces"], base["forces"][perm], atol=1e-10)


def check_locality(model: ContractModel, cluster: Any) -> None:
    """Strict locality on a non-periodic ``cluster``: moving the atom farthest from atom 0
    (staying beyond the cutoff of atom 0) leaves atom 0's energy unchanged, and two clusters far
    apart have the sum of their energies and their own forces."""
    base = model(cluster)
    dist = cluster.get_all_distances()
    far = int(np.argmax(dist[0]))
    assert dist[0, far] > model.cutoff + 0.25, "cluster too small for the locality check"
    moved = cluster.copy()
    moved.positions[far] += (cluster.positions[far] - cluster.positions[0]) / dist[0, far] * 0.2
    out = model(moved)
    delta = abs(float(out["atomic_energy"][0] - base["atomic_energy"][0]))
    assert delta < 1e-12, f"atom 0 felt an atom beyond the cutoff (dE_0 = {delta:.2e} eV)"
    assert not torch.allclose(out["atomic_energy"], base["atomic_energy"], atol=1e-9), (
        "moving an atom changed no energy: the check would prove nothing"
    )
    shifted = cluster.copy()
    shifted.positions += [model.cutoff * 10.0, 0.0, 0.0]
    both = cluster + shifted
    pair = model(both)
    assert abs(float(pair["energy"]) - 2 * float(base["energy"])) < 1e-9 * max(
        1.0, abs(float(base["energy"]))), "two far-apart copies do not add up"  # fmt: skip
    assert torch.allclose(pair["forces"][: len(cluster)], base["forces"], atol=1e-12)


def check_cutoff_smoothness(model: ContractModel, symbols: tuple[str, str] | None = None) -> None:
    """A dimer crossing the cutoff: at and beyond the cutoff force 0 and the same energy;
    approaching it, energy and force go to their cutoff values smoothly (|dE| ~ delta^3 or
    better, |F| ~ delta^2 or better: the contract's smooth cutoff)."""
    a, b = symbols or (model.species[0], model.species[-1])
    index = {s: k for k, s in enumerate(model.species)}
    species = torch.tensor([index[a], index[b]])
    ei = torch.tensor([[0, 1], [1, 0]])
    shift = torch.zeros(2, 3, dtype=model.dtype)

    def dimer(r: float) -> dict[str, torch.Tensor]:
        pos = torch.tensor([[0.0, 0.0, 0.0], [r, 0.0, 0.0]], dtype=model.dtype)
        return model.forward(pos, species, ei, shift, 2)

    at, beyond = dimer(model.cutoff), dimer(model.cutoff + 0.5)
    assert torch.all(at["forces"] == 0.0) and torch.all(beyond["forces"] == 0.0), (
        "force at or beyond the cutoff"
    )
    assert torch.allclose(at["energy"], beyond["energy"], atol=1e-13)
    prev = None
    for delta in (1e-1, 1e-2, 1e-3):
        near = dimer(model.cutoff - delta)
        de = abs(float(near["energy"] - at["energy"]))
        df = float(near["forces"].abs().max())
        assert de < 50 * delta**3 and df < 50 * delta**2, (
            f"not smooth at the cutoff: |dE| {de:.2e}, |F| {df:.2e} at {delta} A inside"
        )
        assert prev is None or de <= prev
        prev = de


def check_scripted_matches_eager(
    eager: ContractModel, scripted: Forward, atoms: Any, atol: float = 1e-12
) -> None:
    """The TorchScript module (``torch.jit.script`` or a loaded model file) gives the eager
    model's outputs."""
    want = eager(atoms)
    got = scripted(*eager.inputs(atoms))
    assert sorted(got) == sorted(want)
    for key in want:
        err = float((got[key].double() - want[key].double()).abs().max())
        assert err <= atol * max(1.0, float(want[key].abs().max())), (
            f"TorchScript {key!r} differs from eager by {err:.2e}"
        )
