"""NVT MD of amorphous SiO_1.55 (out of distribution) with the stability monitor attached.

    python examples/ase/md_with_monitor.py [--steps 500] [--out ase_md_run]

Writes report.json / report.png (Stability Index, failure criterion, time series).
"""

from __future__ import annotations

import argparse

import ase.io
import numpy as np
from _model import example_model
from ase import units
from ase.md.langevin import Langevin

from gnnff.calculators import GNNFFCalculator
from gnnff.calculators.md import init_velocities
from gnnff.stability import (
    StabilityConfig,
    StabilityMonitor,
    StabilityReference,
    run_monitored,
)
from gnnff.study.bundle import SMALL_TEST

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=500)
ap.add_argument("--temperature", type=float, default=1000.0)
ap.add_argument("--out", default="ase_md_run")
args = ap.parse_args()

# an amorphous SiO_1.55 structure from the small test set shipped with the bundled models
frames = ase.io.read(SMALL_TEST, index=":")
atoms = next(a for a in frames if a.info.get("split") == "ood_SiO1.55")
atoms.calc = GNNFFCalculator(example_model())
init_velocities(atoms, args.temperature, seed=0)

dyn = Langevin(
    atoms,
    timestep=1.0 * units.fs,
    temperature_K=args.temperature,
    friction=0.01 / units.fs,
    fixcm=False,
    rng=np.random.default_rng(1),
)
# close contacts are judged against the training data's pair distances stored in the model
reference = StabilityReference.from_model_metadata(atoms.calc.metadata)
monitor = StabilityMonitor(
    atoms,
    dyn,
    config=StabilityConfig(interval=10),
    reference=reference,
    total_steps=args.steps,
    out_dir=args.out,
)
report = run_monitored(dyn, args.steps, monitor)
print(
    f"stable for {report['stable_time_ps']:.3f} of {report['t_run_ps']:.3f} ps, "
    f"Stability Index {report['stability_index']:.2f}, "
    f"failed criterion: {report['failed_criterion']}"
)
print(f"report: {args.out}/report.json and {args.out}/report.png")
