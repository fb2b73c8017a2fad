"""Turn a labelled extxyz file into the shape most DFT workflows hand over: labels under
``REF_energy`` / ``REF_forces`` / ``REF_stress`` (no calculator results), one isolated-atom
frame per element (to pin the E0s), and non-periodic clusters (no stress) cut out of the bulk
frames and labelled with the same reference potential.

    python examples/own_data/to_ref_keys.py IN.extxyz OUT.extxyz [--clusters 4]
        [--preset sio2-tersoff] [--radius 4.5]

Used by the user guide to make a DFT-shaped file from the Tersoff data (``gnnff data
generate``); with real DFT data you skip this step and point ``data.*_key`` at your keys.
The isolated-atom energy of a Tersoff potential is 0 eV for every element.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

from gnnff.data.presets import load_preset
from gnnff.data.reference_md import ReferenceMD
from gnnff.io_utils import read_frames

ap = argparse.ArgumentParser()
ap.add_argument("inp")
ap.add_argument("out")
ap.add_argument(
    "--clusters",
    type=int,
    default=4,
    help="how many frames to cut a non-periodic cluster (no stress) from",
)
ap.add_argument("--radius", type=float, default=4.5, help="cluster radius (A)")
ap.add_argument("--preset", default="sio2-tersoff", help="reference potential (gnnff preset)")
args = ap.parse_args()
if args.clusters < 0:
    ap.error(f"--clusters must be >= 0, got {args.clusters}")
out_path = Path(args.out)
if out_path.is_dir():
    ap.error(f"OUT {out_path} is a folder; give a file name such as {out_path / 'train.extxyz'}")
try:
    frames = read_frames(args.inp)  # a missing or unreadable file: one line naming the fix
    preset = load_preset(args.preset)
except (OSError, ValueError) as exc:
    sys.exit(f"to_ref_keys.py: error: {exc}")
out, clusters = [], []
for atoms in frames:
    a = Atoms(
        atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc
    )
    a.info["REF_energy"] = atoms.get_potential_energy()
    a.arrays["REF_forces"] = atoms.get_forces()
    try:
        a.info["REF_stress"] = atoms.get_stress(voigt=False).ravel()
    except Exception:  # noqa: BLE001 - frames without a stress label stay without one
        pass
    out.append(a)
# clusters: atoms within --radius of a frame's centre (minimum image), in a box with more
# vacuum than the cutoff, labelled by the reference potential through LAMMPS, written
# non-periodic (energies and forces only)
for k, a in enumerate(out[: args.clusters]):
    centre = a.cell.array.sum(axis=0) / 2
    d = a.positions - centre
    d -= np.round(d @ np.linalg.inv(a.cell.array)) @ a.cell.array
    keep = np.linalg.norm(d, axis=1) < args.radius
    box = 2 * args.radius + 20.0
    c = Atoms(
        np.array(a.get_chemical_symbols())[keep],
        positions=d[keep] + box / 2,
        cell=np.eye(3) * box,
        pbc=True,
    )
    with ReferenceMD(c, preset["lammps"], 1.0, 100.0) as md:
        energy, forces = md.evaluate(c)
    c.pbc = False
    c.info.update(REF_energy=energy, config_type="cluster", source_frame=k)
    c.arrays["REF_forces"] = forces
    clusters.append(c)
out += clusters
symbols = sorted({s for a in out for s in a.get_chemical_symbols()})
for s in symbols:
    iso = Atoms(s, positions=[[0.0, 0.0, 0.0]], pbc=False)
    iso.info["REF_energy"] = 0.0  # Tersoff: an isolated atom has zero energy
    iso.arrays["REF_forces"] = np.zeros((1, 3))
    iso.info["config_type"] = "IsolatedAtom"
    out.append(iso)
out_path.parent.mkdir(parents=True, exist_ok=True)  # e.g. data/own/ on the first run
ase.io.write(out_path, out, format="extxyz")
print(
    f"wrote {args.out}: {len(frames)} frames with REF_* keys, {len(clusters)} clusters "
    f"without stress, isolated atoms {symbols}"
)
