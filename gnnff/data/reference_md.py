"""Classical reference MD and labelling through the LAMMPS Python module (one process)."""

from __future__ import annotations

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator
from ase.data import atomic_masses, atomic_numbers

from gnnff.errors import UsageError
from gnnff.lammps.geometry import lammps_cell
from gnnff.lammps.library import new_lammps, potential_file

POSITION_DECIMALS = 8  # extxyz stores positions with %16.8f: label exactly what is stored


def _num(x: float) -> str:
    """A number as LAMMPS reads it back exactly."""
    return repr(float(x))


class ReferenceMD:
    """A LAMMPS session running a preset's classical potential on one periodic cell.

    Units are LAMMPS ``metal`` (eV, A, ps); temperatures in K; times given in fs.
    Positions are kept in LAMMPS' lower-triangular cell frame.
    """

    def __init__(self, atoms: Atoms, lammps_spec: dict, timestep_fs: float, damp_fs: float):
        self.elements = list(lammps_spec["elements"])
        unknown = set(atoms.get_chemical_symbols()) - set(self.elements)
        if unknown:
            raise UsageError(f"elements {sorted(unknown)} are not in the preset's {self.elements}")
        self.atoms = lammps_cell(atoms)
        self.timestep_fs = float(timestep_fs)
        self.damp_fs = float(damp_fs)
        self.n = len(self.atoms)
        self.lmp = new_lammps()
        self._setup(lammps_spec)

    def _setup(self, spec: dict) -> None:
        lmp = self.lmp
        cell = self.atoms.cell.array
        lx, ly, lz = (float(v) for v in (cell[0, 0], cell[1, 1], cell[2, 2]))
        xy, xz, yz = (float(v) for v in (cell[1, 0], cell[2, 0], cell[2, 1]))
        ntypes = len(self.elements)
        charges = spec.get("charges")  # a charge-transfer potential (COMB): atom_style charge
        lmp.commands_list(
            [
                "units metal",
                f"atom_style {'charge' if charges else 'atomic'}",
                "atom_modify map array sort 0 0.0",
                "boundary p p p",
                f"region box prism 0 {_num(lx)} 0 {_num(ly)} 0 {_num(lz)} "
                f"{_num(xy)} {_num(xz)} {_num(yz)} units box",
                f"create_box {ntypes} box",
            ]
        )
        types = [self.elements.index(s) + 1 for s in self.atoms.get_chemical_symbols()]
        lmp.create_atoms(
            self.n, list(range(1, self.n + 1)), types, self.atoms.positions.ravel().tolist()
        )
        start_charges = self._neutral_charges(charges) if charges else {}
        for k, el in enumerate(self.elements, start=1):
            lmp.command(f"mass {k} {_num(atomic_masses[atomic_numbers[el]])}")
            if charges:
                lmp.command(f"set type {k} charge {_num(start_charges[el])}")
        pot = potential_file(spec["potential_file"])
        lmp.commands_list(
            [
                f"pair_style {spec['pair_style']}",
                f"pair_coeff * * {pot} {' '.join(self.elements)}",
            ]
        )
        if charges and spec.get("qeq_every"):
            # charge equilibration every N steps: the cost of COMB is almost all in QEq
            lmp.command(f"fix gnnff_qeq all qeq/comb {int(spec['qeq_every'])} 0.0001")
        lmp.commands_list(
            [
                "neighbor 1.0 bin",
                "neigh_modify every 1 delay 0 check yes",
                f"timestep {_num(self.timestep_fs / 1000.0)}",
                "compute pvir all pressure NULL virial",
                "thermo_style custom step temp pe etotal c_pvir[*]",
                "thermo 1000000",
            ]
        )

    def _neutral_charges(self, charges: dict[str, float]) -> dict[str, float]:
        """Starting charges of a charge-transfer potential, the positive ones scaled so that
        the cell is neutral for its own composition (QEq keeps the total charge; COMB's QEq
        is unstable from all-zero charges)."""
        syms = self.atoms.get_chemical_symbols()
        pos = sum(charges[s] for s in syms if charges[s] > 0)
        neg = -sum(charges[s] for s in syms if charges[s] < 0)
        scale = neg / pos if pos > 0 and neg > 0 else 1.0
        return {el: q * scale if q > 0 else q for el, q in charges.items()}

    def _positions(self) -> np.ndarray:
        x = self.lmp.numpy.extract_atom("x")[: self.n]
        return np.array(x, dtype=np.float64)

    def set_velocities(self, temperature: float, seed: int) -> None:
        self.lmp.command(
            f"velocity all create {_num(temperature)} {seed} dist gaussian mom yes rot no"
        )

    def nvt(self, t_start: float, t_stop: float, time_fs: float, seed: int) -> None:
        """Langevin NVT from ``t_start`` to ``t_stop`` K over ``time_fs`` fs."""
        steps = int(round(time_fs / self.timestep_fs))
        if steps <= 0:
            return
        damp_ps = self.damp_fs / 1000.0
        self.lmp.commands_list(
            [
                f"fix gnnff_lgv all langevin {_num(t_start)} {_num(t_stop)} {_num(damp_ps)} {seed} "
                "zero yes",
                "fix gnnff_nve all nve",
                f"run {steps}",
                "unfix gnnff_lgv",
                "unfix gnnff_nve",
            ]
        )

    def label(self, info: dict | None = None) -> Atoms:
        """Round positions to what extxyz stores, recompute (``run 0``) and return the frame
        with energy (eV), forces (eV/A) and stress (eV/A^3, ASE Voigt) attached."""
        x = np.round(self._positions(), POSITION_DECIMALS)
        self.lmp.numpy.extract_atom("x")[: self.n] = x
        self.lmp.command("run 0")
        return self._frame(x, info)

    def _frame(self, x: np.ndarray, info: dict | None) -> Atoms:
        lmp = self.lmp
        energy = float(lmp.get_thermo("pe"))
        forces = np.array(lmp.numpy.extract_atom("f")[: self.n], dtype=np.float64)
        from lammps import LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR

        pv = np.array(lmp.numpy.extract_compute("pvir", LMP_STYLE_GLOBAL, LMP_TYPE_VECTOR))
        # LAMMPS order xx yy zz xy xz yz -> ASE Voigt xx yy zz yz xz xy; stress = -pressure
        stress = -np.array([pv[0], pv[1], pv[2], pv[5], pv[4], pv[3]]) * units.bar
        atoms = Atoms(
            self.atoms.get_chemical_symbols(), positions=x, cell=self.atoms.cell.array, pbc=True
        )
        atoms.info.update(info or {})
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces, stress=stress)
        return atoms

    def evaluate(self, atoms: Atoms) -> tuple[float, np.ndarray]:
        """Energy (eV) and forces (eV/A) of ``atoms`` (same cell and order) by ``run 0``."""
        self.lmp.numpy.extract_atom("x")[: self.n] = atoms.positions
        self.lmp.command("run 0")
        return float(self.lmp.get_thermo("pe")), np.array(
            self.lmp.numpy.extract_atom("f")[: self.n], dtype=np.float64
        )

    def close(self) -> None:
        self.lmp.close()

    def __enter__(self) -> ReferenceMD:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
