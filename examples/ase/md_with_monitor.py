"""NVT MD of amorphous SiO_1.55 (out of distribution) with the stability monitor attached.

    python examples/ase/md_with_monitor.py [--steps 500] [--out ase_md_run]

Writes report.json / report.png (Stability Index, failure criterion, time series) and md.traj.
"""

from __future__ import annotations

import argparse

import numpy as np
from _model import example_model
from ase import units
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary

from gnnff.calculators import GNNFFCalculator
from gnnff.data.structures import composition_counts, random_packing
from gnnff.stability import StabilityConfig, StabilityMonitor, run_monitored

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=500)
ap.add_argument("--temperature", type=float, default=1000.0)
ap.add_argument("--out", default="ase_md_run")
args = ap.parse_args()

rng = np.random.default_rng(0)
atoms = random_packing(composition_counts({"Si": 1.0, "O": 1.55}, 76), 2.2, 1.6, rng)
atoms.calc = GNNFFCalculator(example_model())
MaxwellBoltzmannDistribution(atoms, temperature_K=args.temperature, rng=rng)
Stationary(atoms)

dyn = Langevin(atoms, timestep=1.0 * units.fs, temperature_K=args.temperature,
               friction=0.01 / units.fs, rng=np.random.default_rng(1))
monitor = StabilityMonitor(atoms, dyn, config=StabilityConfig(interval=10),
                           total_steps=args.steps, out_dir=args.out)
report = run_monitored(dyn, args.steps, monitor)
print(f"stable for {report['stable_time_ps']:.3f} of {report['t_run_ps']:.3f} ps, "
      f"Stability Index {report['stability_index']:.2f}, "
      f"failed criterion: {report['failed_criterion']}")
print(f"report: {args.out}/report.json and {args.out}/report.png")
