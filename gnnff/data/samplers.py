"""Structure samplers of the data presets: reference MD with the preset's classical potential
(melt-quench for amorphous cells), rattled and strained crystals (no MD), and the on-disk
sample cache that lets a long (teacher-labelled) generation resume."""

from __future__ import annotations

import io
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

from gnnff.data.reference_md import ReferenceMD
from gnnff.data.structures import (
    composition_counts,
    crystal_structure,
    random_packing,
    scale_density,
)
from gnnff.io_utils import atomic_write


def initial_structure(
    preset: dict, sysd: dict, n_atoms: int | None, df: float, rng: np.random.Generator
) -> Atoms:
    if sysd["kind"] == "crystal":
        return scale_density(crystal_structure(sysd["crystal"], sysd["repeat"]), df)
    counts = composition_counts(sysd["composition"], int(n_atoms))
    return random_packing(counts, sysd["density"] * df, preset.get("min_distance", 1.6), rng)


def prepare_md(
    preset: dict, sysd: dict, n_atoms: int | None, df: float, temp: float, seeds: list[int]
) -> ReferenceMD:
    """Start a reference MD session equilibrated at ``temp`` (melt-quench for amorphous)."""
    rng = np.random.default_rng(seeds[0])
    atoms = initial_structure(preset, sysd, n_atoms, df, rng)
    md = ReferenceMD(
        atoms,
        preset["lammps"],
        preset.get("timestep_fs", 1.0),
        preset.get("thermostat_damp_fs", 100.0),
    )
    if sysd["kind"] == "amorphous":
        melt = preset["melt"]
        md.set_velocities(melt["temperature"], seeds[1])
        md.nvt(melt["temperature"], melt["temperature"], melt["time_fs"], seeds[2])
        md.nvt(melt["temperature"], temp, melt["quench_fs"], seeds[3])
    else:
        md.set_velocities(temp, seeds[1])
    md.nvt(temp, temp, preset.get("equilibration_fs", 2000), seeds[2] + 1)
    return md


def rattle_frames(
    preset: dict, sysd: dict, df: float, temp: float, n_frames: int, seed: int, info: dict
) -> list[Atoms]:
    """Crystal frames without MD: the ideal cell at density factor ``df`` under a random
    symmetric strain (RMS ``rattle.strain``, default 0.01) with Gaussian displacements of RMS
    ``sigma_300K[element] * sqrt(T / 300 K)`` per Cartesian component (harmonic scaling).
    Unlabelled unless the preset has no ``labels`` (then the sampler potential labels them)."""
    rng = np.random.default_rng(seed)
    base = initial_structure(preset, sysd, None, df, rng)
    spec = sysd["rattle"]
    sigma = np.array([spec["sigma_300K"][s] for s in base.get_chemical_symbols()])
    sigma = sigma * np.sqrt(temp / 300.0)
    strain_rms = float(spec.get("strain", 0.01))
    frames = []
    for k in range(n_frames):
        eps = rng.normal(0.0, strain_rms, (3, 3))
        a = base.copy()
        a.set_cell(base.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        a.positions = a.positions + rng.normal(0.0, 1.0, (len(a), 3)) * sigma[:, None]
        a.wrap()
        a.info.update(dict(info, frame=k))
        frames.append(a)
    if "labels" not in preset:  # each strained cell in its own session (LAMMPS' frame)
        labelled = []
        for a in frames:
            with ReferenceMD(a, preset["lammps"], 1.0, 100.0) as md:
                labelled.append(md.label(dict(a.info)))
        frames = labelled
    return frames


def sample_md(
    md: ReferenceMD, temp: float, n_frames: int, spacing_fs: float, seed: int, info: dict
) -> list[Atoms]:
    frames = []
    for k in range(n_frames):
        md.nvt(temp, temp, spacing_fs, seed + k)
        frames.append(md.label(dict(info, frame=k)))
    return frames


def write_extxyz(path: Path, frames: list[Atoms]) -> None:
    buf = io.StringIO()
    ase.io.write(buf, frames, format="extxyz")
    atomic_write(path, lambda p: p.write_text(buf.getvalue()))


def samples_dir(labeller, preset: dict, seed: int) -> Path | None:
    """Where sampled structures are kept for a resumed run (only when a label cache exists:
    a teacher-labelled preset, whose runs take hours), keyed by the preset and seed."""
    if labeller is None or labeller.cache_dir is None:
        return None
    import hashlib
    import json

    body = {k: v for k, v in preset.items() if not k.startswith("_")}
    key = hashlib.sha256(json.dumps([body, seed], sort_keys=True, default=str).encode())
    return labeller.cache_dir / "samples" / key.hexdigest()[:16]


def cached_sample(folder: Path | None, name: str, sample) -> list[Atoms]:
    """``sample()``, or the frames a previous run of the same preset and seed stored."""
    if folder is None:
        return sample()
    path = folder / f"{name}.extxyz"
    if path.is_file():
        return ase.io.read(path, index=":", format="extxyz")
    folder.mkdir(parents=True, exist_ok=True)
    write_extxyz(path, sample())
    # what a resumed run reads back, so that the label cache's frame keys match
    return ase.io.read(path, index=":", format="extxyz")
