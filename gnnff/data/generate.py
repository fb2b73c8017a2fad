"""Generate labelled reference data (extended XYZ) from a preset's classical potential.

Outputs in ``out_dir``: ``train.extxyz``, ``valid.extxyz``, ``test_id.extxyz`` (ID pool split
by ``id_split``), one ``<split>.extxyz`` per OOD split, ``reference_md/<system>_<T>K.extxyz``
(reference-potential NVT trajectories) and ``manifest.json``. The same preset and seed give
byte-identical files.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

import gnnff
from gnnff.data.presets import load_preset
from gnnff.data.reference_md import ReferenceMD
from gnnff.data.structures import (
    composition_counts,
    crystal_structure,
    density_g_cm3,
    random_packing,
    scale_density,
)
from gnnff.io_utils import atomic_write, atomic_write_json, sha256_file
from gnnff.lammps.library import potential_file


class DataGenerationError(RuntimeError):
    """The data set cannot be generated as asked (e.g. the output folder is not empty)."""


@dataclass
class StatePoint:
    """One independent reference MD run from which frames are sampled."""

    system: dict
    n_atoms: int | None
    density_factor: float
    temperature: float
    frames: int
    split: str
    index: int
    label: str = field(init=False)

    def __post_init__(self) -> None:
        size = f"_{self.n_atoms}" if self.n_atoms else ""
        self.label = f"{self.system['name']}{size}_rho{self.density_factor:g}_{self.temperature:g}K"


def _seeds(seed: int, index: int, n: int = 4) -> list[int]:
    """Deterministic positive seeds for unit ``index``: LAMMPS' Marsaglia generator wants
    0 < seed <= 9e8, and small offsets are added to them."""
    state = np.random.SeedSequence([seed, index]).generate_state(n)
    return [int(s % 800_000_000) + 1 for s in state]


def state_points(preset: dict) -> list[StatePoint]:
    points: list[StatePoint] = []
    for sysd in preset["systems"]:
        sizes = sysd.get("n_atoms", [None]) if sysd["kind"] == "amorphous" else [None]
        for n in sizes:
            for df in sysd.get("density_factors", [1.0]):
                for temp in sysd["temperatures"]:
                    points.append(
                        StatePoint(
                            sysd,
                            n,
                            float(df),
                            float(temp),
                            int(sysd["frames"]),
                            sysd["split"],
                            len(points),
                        )
                    )
    return points


def _initial_structure(
    preset: dict, sysd: dict, n_atoms: int | None, df: float, rng: np.random.Generator
) -> Atoms:
    if sysd["kind"] == "crystal":
        return scale_density(crystal_structure(sysd["crystal"], sysd["repeat"]), df)
    counts = composition_counts(sysd["composition"], int(n_atoms))
    return random_packing(counts, sysd["density"] * df, preset.get("min_distance", 1.6), rng)


def _prepare(
    preset: dict, sysd: dict, n_atoms: int | None, df: float, temp: float, seeds: list[int]
) -> ReferenceMD:
    """Start a reference MD session equilibrated at ``temp`` (melt-quench for amorphous)."""
    rng = np.random.default_rng(seeds[0])
    atoms = _initial_structure(preset, sysd, n_atoms, df, rng)
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


def _rattle(
    preset: dict, sysd: dict, df: float, temp: float, n_frames: int, seed: int, info: dict
) -> list[Atoms]:
    """Crystal frames without MD: the ideal cell at density factor ``df`` under a random
    symmetric strain (RMS ``rattle.strain``, default 0.01) with Gaussian displacements of RMS
    ``sigma_300K[element] * sqrt(T / 300 K)`` per Cartesian component (harmonic scaling).
    Unlabelled unless the preset has no ``labels`` (then the sampler potential labels them)."""
    rng = np.random.default_rng(seed)
    base = _initial_structure(preset, sysd, None, df, rng)
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


def _sample(
    md: ReferenceMD, temp: float, n_frames: int, spacing_fs: float, seed: int, info: dict
) -> list[Atoms]:
    frames = []
    for k in range(n_frames):
        md.nvt(temp, temp, spacing_fs, seed + k)
        frames.append(md.label(dict(info, frame=k)))
    return frames


def _write_extxyz(path: Path, frames: list[Atoms]) -> None:
    buf = io.StringIO()
    ase.io.write(buf, frames, format="extxyz")
    atomic_write(path, lambda p: p.write_text(buf.getvalue()))


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise DataGenerationError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise DataGenerationError(
            f"output folder {out_dir} is not empty; nothing was written. Choose an empty "
            "folder or pass --overwrite to replace its contents"
        )


def _swap_in(tmp_dir: Path, out_dir: Path) -> None:
    """Replace ``out_dir`` by the finished ``tmp_dir`` (the old contents go only now, after
    the new data set is complete on disk)."""
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
        os.replace(tmp_dir, out_dir)
        shutil.rmtree(old)
    else:
        os.replace(tmp_dir, out_dir)


def generate_dataset(
    preset: str | dict = "sio2-tersoff",
    out_dir: str | Path = "data/sio2",
    seed: int = 0,
    quick: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    check: bool = True,
    label_cache: str | Path | None = None,
    threads: int | None = None,
) -> dict:
    """Generate the data set of ``preset`` into ``out_dir`` and return its manifest.

    A preset with a ``labels`` section (a reference spec, e.g. ``{teacher: sevennet-0}``)
    samples structures with its ``lammps`` potential (or the rattle sampler) and labels every
    frame with that reference; labels are cached per frame in ``label_cache`` (default: the
    folder ``.<out_dir name>.label-cache`` beside ``out_dir``), so an interrupted run
    continues where it stopped when the same command is run again. ``threads``: torch
    threads of a teacher.
    """
    from tqdm import tqdm

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataGenerationError(f"seed must be a non-negative integer, got {seed!r}")
    preset = load_preset(preset, quick=quick) if isinstance(preset, str) else preset
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)
    labeller = _labeller(preset, out_dir, label_cache, threads)  # bad spec: before any work
    points = state_points(preset)
    ref = preset.get("reference_md") or {}
    ref_units = [(s, float(t)) for s in ref.get("systems", []) for t in ref.get("temperatures", [])]
    spacing = preset.get("frame_spacing_fs", 50)
    splits: dict[str, list[Atoms]] = {}
    samples = _samples_dir(labeller, preset, seed)
    bar = tqdm(
        total=len(points) + len(ref_units), desc="reference MD", unit="run", disable=not progress
    )
    state_meta = []
    for sp in points:
        seeds = _seeds(seed, sp.index)
        info = {
            "config_type": sp.system["name"],
            "temperature": sp.temperature,
            "density_factor": sp.density_factor,
            "state_point": sp.label,
        }

        def sample(sp=sp, seeds=seeds, info=info) -> list[Atoms]:
            if sp.system.get("sampler", "md") == "rattle":
                return _rattle(
                    preset, sp.system, sp.density_factor, sp.temperature, sp.frames, seeds[0], info
                )
            with _prepare(
                preset, sp.system, sp.n_atoms, sp.density_factor, sp.temperature, seeds
            ) as md:
                return _sample(md, sp.temperature, sp.frames, spacing, seeds[3] + 7, info)

        frames = _cached_sample(samples, f"{sp.index:04d}_{sp.label}", sample)
        splits.setdefault(sp.split, []).extend(frames)
        state_meta.append(
            {
                "label": sp.label,
                "system": sp.system["name"],
                "split": sp.split,
                "n_atoms": len(frames[0]),
                "temperature_K": sp.temperature,
                "density_g_cm3": round(density_g_cm3(frames[0]), 4),
                "frames": len(frames),
            }
        )
        bar.update()
    outputs: dict[str, list[Atoms]] = {}
    id_pool = splits.pop("id", [])
    if id_pool:
        outputs.update(_split_id(id_pool, preset.get("id_split", {}), seed))
    outputs.update(splits)
    ref_outputs: dict[str, list[Atoms]] = {}
    systems = {s["name"]: s for s in preset["systems"]}
    for k, (name, temp) in enumerate(ref_units):
        sysd = systems[name]
        seeds = _seeds(seed, 100_000 + k)
        n = sysd.get("n_atoms", [None])[-1] if sysd["kind"] == "amorphous" else None
        info = {"config_type": name, "temperature": temp, "reference_md": True}
        n_frames = int(ref["time_fs"] // ref["frame_spacing_fs"])

        def sample_ref(sysd=sysd, n=n, temp=temp, seeds=seeds, info=info, n_frames=n_frames):
            with _prepare(preset, sysd, n, 1.0, temp, seeds) as md:
                return _sample(md, temp, n_frames, ref["frame_spacing_fs"], seeds[3] + 7, info)

        ref_outputs[f"{name}_{temp:g}K"] = _cached_sample(
            samples, f"ref_{k:04d}_{name}_{temp:g}K", sample_ref
        )
        bar.update()
    bar.close()
    label_log: dict = {}
    if labeller is not None:
        outputs, ref_outputs, label_log = _relabel(labeller, outputs, ref_outputs, progress)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    final_dir, out_dir = (
        out_dir,
        Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent)),
    )
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(out_dir, 0o777 & ~umask)  # mkdtemp makes 0700; give a normal folder's mode
    try:
        files = _write_outputs(out_dir, outputs, ref_outputs)
    except BaseException:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise
    manifest = {
        "preset": preset["name"],
        "preset_source": Path(preset["_source"]).name,
        "quick": bool(preset.get("quick_mode", False)),
        "seed": seed,
        "lammps": preset["lammps"],
        "potential_sha256": sha256_file(potential_file(preset["lammps"]["potential_file"])),
        "species": list(preset["lammps"]["elements"]),
        "compositions": {s["name"]: (s.get("composition") or "crystal") for s in preset["systems"]},
        "frame_spacing_fs": spacing,
        "state_points": state_meta,
        "reference_md": [{"system": n, "temperature_K": t} for n, t in ref_units],
        "frames": files,
        "sha256": {name: sha256_file(out_dir / name) for name in files},
        "gnnff_version": gnnff.__version__,
    }
    if labeller is not None:
        from gnnff.data.reference import reference_provenance

        # the sampler above only made the structures; these are the labels' physics
        manifest["labels"] = {**reference_provenance(labeller.spec), **label_log}
    atomic_write_json(out_dir / "manifest.json", manifest)
    _swap_in(out_dir, final_dir)
    out_dir = final_dir
    if check:
        from gnnff.data.check import check_dataset

        check_dataset(out_dir, n_sample=2)
    return manifest


def _samples_dir(labeller, preset: dict, seed: int) -> Path | None:
    """Where sampled structures are kept for a resumed run (only when a label cache exists:
    a teacher-labelled preset, whose runs take hours), keyed by the preset and seed."""
    if labeller is None or labeller.cache_dir is None:
        return None
    import hashlib
    import json

    body = {k: v for k, v in preset.items() if not k.startswith("_")}
    key = hashlib.sha256(json.dumps([body, seed], sort_keys=True, default=str).encode())
    return labeller.cache_dir / "samples" / key.hexdigest()[:16]


def _cached_sample(folder: Path | None, name: str, sample) -> list[Atoms]:
    """``sample()``, or the frames a previous run of the same preset and seed stored."""
    if folder is None:
        return sample()
    path = folder / f"{name}.extxyz"
    if path.is_file():
        return ase.io.read(path, index=":", format="extxyz")
    folder.mkdir(parents=True, exist_ok=True)
    _write_extxyz(path, sample())
    # what a resumed run reads back, so that the label cache's frame keys match
    return ase.io.read(path, index=":", format="extxyz")


def _labeller(preset: dict, out_dir: Path, cache: str | Path | None, threads: int | None):
    """The preset's ``labels`` reference, validated for its species (None: the sampler
    potential labels)."""
    if "labels" not in preset:
        return None
    from gnnff.data.labelling import Labeller
    from gnnff.data.reference import ReferenceSpecError, validate_reference

    try:
        spec = validate_reference(preset["labels"], species=list(preset["lammps"]["elements"]))
    except ReferenceSpecError as exc:
        raise DataGenerationError(f"preset {preset['name']}: labels: {exc}") from None
    cache = Path(cache) if cache else out_dir.parent / f".{out_dir.name}.label-cache"
    return Labeller(spec, cache_dir=cache, threads=threads)


def _relabel(
    labeller, outputs: dict[str, list[Atoms]], ref_outputs: dict[str, list[Atoms]], progress: bool
) -> tuple[dict, dict, dict]:
    """Every frame labelled by the reference; skipped frames are dropped and counted."""
    log: dict = {"skipped": {}, "from_cache": 0}
    new: list[dict[str, list[Atoms]]] = [{}, {}]
    for k, group in enumerate((outputs, ref_outputs)):
        for name, frames in group.items():
            res = labeller.label(frames, progress=progress, desc=f"labels {name}")
            new[k][name] = res.frames
            log["from_cache"] += res.from_cache
            if res.skipped:
                log["skipped"][name] = res.skipped
    return new[0], new[1], log


def _write_outputs(
    out_dir: Path, outputs: dict[str, list[Atoms]], ref_outputs: dict[str, list[Atoms]]
) -> dict[str, int]:
    files = {}
    for name, frames in outputs.items():
        _write_extxyz(out_dir / f"{name}.extxyz", frames)
        files[f"{name}.extxyz"] = len(frames)
    for name, frames in ref_outputs.items():
        _write_extxyz(out_dir / "reference_md" / f"{name}.extxyz", frames)
        files[f"reference_md/{name}.extxyz"] = len(frames)
    return files


def _split_id(frames: list[Atoms], fractions: dict, seed: int) -> dict[str, list[Atoms]]:
    fractions = fractions or {"train": 0.8, "valid": 0.1, "test_id": 0.1}
    order = np.random.default_rng(seed).permutation(len(frames))
    names = list(fractions)
    counts = [int(round(fractions[n] * len(frames))) for n in names[1:]]
    counts = [max(1, c) for c in counts]
    counts.insert(0, len(frames) - sum(counts))
    if counts[0] < 1:
        raise DataGenerationError(f"only {len(frames)} ID frames: too few to split {fractions}")
    out, start = {}, 0
    for name, c in zip(names, counts, strict=True):
        out[name] = [frames[i] for i in sorted(order[start : start + c])]
        start += c
    return out
