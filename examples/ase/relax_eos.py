"""Relax alpha-quartz with a gnnff model, then fit equations of state E(V).

    python examples/ase/relax_eos.py [--out eos.png] [--clamped-only]

Two bulk moduli, which differ a lot for quartz (a framework of rigid tetrahedra that rotate
under pressure): the *clamped-ion* one scales all positions with the cell (no internal
relaxation: an upper bound, not what experiments measure), the *relaxed-ion* one relaxes the
atoms at each volume (cell shape fixed), which is the one to compare with experiment
(alpha-quartz: about 37 GPa).
"""

from __future__ import annotations

import argparse

import numpy as np
from _model import example_model
from ase.eos import EquationOfState
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS
from ase.spacegroup import crystal
from ase.units import GPa

from gnnff.calculators import GNNFFCalculator

ap = argparse.ArgumentParser()
ap.add_argument("--out", default="eos.png")
ap.add_argument("--clamped-only", action="store_true", help="skip the relaxed-ion EOS")
args = ap.parse_args()

quartz = crystal(
    ["Si", "O"],
    basis=[(0.4697, 0.0, 2 / 3), (0.4135, 0.2669, 0.1191 + 2 / 3)],
    spacegroup=154,
    cellpar=[4.916, 4.916, 5.405, 90, 90, 120],
).repeat((2, 2, 2))
calc = GNNFFCalculator(example_model())
quartz.calc = calc
BFGS(FrechetCellFilter(quartz), logfile=None).run(fmax=0.02, steps=300)
print(
    f"relaxed: a = {quartz.cell.cellpar()[0] / 2:.3f} A, c = {quartz.cell.cellpar()[2] / 2:.3f}"
    f" A, E = {quartz.get_potential_energy() / len(quartz):.4f} eV/atom"
)

cell0 = quartz.cell.array.copy()


def eos_fit(relax: bool):
    volumes, energies = [], []
    for s in np.linspace(0.96, 1.04, 9):
        a = quartz.copy()
        a.set_cell(cell0 * s, scale_atoms=True)
        a.calc = calc
        if relax:
            BFGS(a, logfile=None).run(fmax=0.02, steps=300)
        volumes.append(a.get_volume())
        energies.append(a.get_potential_energy())
    eos = EquationOfState(volumes, energies, eos="birchmurnaghan")
    return eos, eos.fit()


eos, (v0, e0, b) = eos_fit(relax=False)
print(
    f"EOS, clamped ions (positions scaled with the cell, not relaxed): "
    f"V0 = {v0 / len(quartz):.3f} A^3/atom, B = {b / GPa:.1f} GPa"
)
if not args.clamped_only:
    eos, (v0, e0, b) = eos_fit(relax=True)
    print(
        f"EOS, relaxed ions (atoms relaxed at each volume, cell shape fixed): "
        f"V0 = {v0 / len(quartz):.3f} A^3/atom, B = {b / GPa:.1f} GPa"
    )
eos.plot(args.out)
print(f"plot ({'clamped' if args.clamped_only else 'relaxed'} ions): {args.out}")
