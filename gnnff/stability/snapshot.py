"""One MD frame as the stability checks see it, engine-independent (ASE or LAMMPS)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def ase_time_to_ps(t: float) -> float:
    """Convert a time in ASE units (e.g. ``dyn.dt``; sqrt(u A^2/eV)) to ps."""
    from ase import units

    return float(t) / (1000.0 * units.fs)


@dataclass
class Snapshot:
    """State of a run at one checked step.

    Units: positions/cell in A, energies in eV, temperature in K, forces in eV/A, time in ps.
    ``numbers`` [N], ``positions`` [N,3], ``cell`` [3,3] (rows = lattice vectors), ``pbc`` [3].
    ``min_distance``, ``max_force`` and ``n_nonfinite`` are optional engine-side diagnostics
    (e.g. from ``compute pair gnnff`` in LAMMPS); when positions/forces are present the tracker
    computes its own values from them as well. ``positions`` may be None when only the engine
    diagnostics are at hand (then close contact uses ``min_distance`` against the smallest pair
    threshold, and the RDF check is skipped). ``time_ps`` counts from the start of the run
    (0 at its first step), so that S = tau / t_run holds.
    """

    step: int
    time_ps: float
    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    potential_energy: float | None = None
    kinetic_energy: float | None = None
    temperature: float | None = None
    forces: np.ndarray | None = None
    min_distance: float | None = None
    max_force: float | None = None
    n_nonfinite: int | None = None

    def __post_init__(self) -> None:
        self.numbers = np.asarray(self.numbers, dtype=np.int64).reshape(-1)
        n = len(self.numbers)
        if self.positions is not None:
            self.positions = np.asarray(self.positions, dtype=np.float64)
        if self.positions is not None and self.positions.shape != (n, 3):
            raise ValueError(
                f"Snapshot.positions has shape {self.positions.shape}, expected ({n}, 3) "
                "to match numbers"
            )
        self.cell = np.asarray(self.cell, dtype=np.float64)
        if self.cell.shape != (3, 3):
            raise ValueError(f"Snapshot.cell has shape {self.cell.shape}, expected (3, 3)")
        self.pbc = np.broadcast_to(np.asarray(self.pbc, dtype=bool), (3,)).copy()
        if self.forces is not None:
            self.forces = np.asarray(self.forces, dtype=np.float64)
            if self.forces.shape != (n, 3):
                raise ValueError(
                    f"Snapshot.forces has shape {self.forces.shape}, expected ({n}, 3)"
                )
        self.step = int(self.step)
        self.time_ps = float(self.time_ps)

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    @property
    def total_energy(self) -> float | None:
        """E_pot + E_kin (eV), or None when either is unknown."""
        if self.potential_energy is None or self.kinetic_energy is None:
            return None
        return float(self.potential_energy) + float(self.kinetic_energy)

    def force_max(self) -> float | None:
        """Largest |F_i| (eV/A) from ``forces``, else the engine-side ``max_force``."""
        if self.forces is not None and len(self.forces):
            return float(np.max(np.linalg.norm(self.forces, axis=1)))
        return None if self.max_force is None else float(self.max_force)

    def temperature_value(self) -> float | None:
        """``temperature`` if given, else 2 E_kin / (3 N k_B) (K) from the kinetic energy."""
        if self.temperature is not None:
            return float(self.temperature)
        if self.kinetic_energy is None or self.n_atoms == 0:
            return None
        from ase import units

        return 2.0 * float(self.kinetic_energy) / (3.0 * self.n_atoms * units.kB)

    @classmethod
    def from_atoms(
        cls,
        atoms: Any,
        step: int,
        time_ps: float,
        *,
        use_calculator: bool = True,
    ) -> Snapshot:
        """Build a snapshot from ``ase.Atoms`` without any new force evaluation.

        Energy and forces are read from ``atoms.calc.results`` (or a SinglePointCalculator)
        only if the calculator's results belong to the current positions; otherwise they are
        left as None. Kinetic energy and temperature come from the momenta (cheap).
        """
        epot = None
        forces = None
        calc = atoms.calc if use_calculator else None
        if calc is not None:
            results = getattr(calc, "results", {}) or {}
            stale = False
            check_state = getattr(calc, "check_state", None)
            if callable(check_state) and getattr(calc, "atoms", None) is not None:
                try:
                    stale = bool(check_state(atoms))
                except Exception:  # a calculator with an unusual state check: trust results
                    stale = False
            if not stale:
                if "energy" in results:
                    epot = float(np.asarray(results["energy"]).reshape(-1)[0])
                elif "free_energy" in results:
                    epot = float(np.asarray(results["free_energy"]).reshape(-1)[0])
                if "forces" in results:
                    forces = np.array(results["forces"], dtype=np.float64)
        ekin = temp = None
        if atoms.has("momenta"):
            ekin = float(atoms.get_kinetic_energy())
            temp = float(atoms.get_temperature()) if len(atoms) else None
        return cls(
            step=step,
            time_ps=time_ps,
            numbers=atoms.get_atomic_numbers().copy(),
            positions=atoms.get_positions().copy(),
            cell=np.array(atoms.get_cell()),
            pbc=atoms.get_pbc().copy(),
            potential_energy=epot,
            kinetic_energy=ekin,
            temperature=temp,
            forces=forces,
        )
