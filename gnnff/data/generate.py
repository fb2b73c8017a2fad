"""Generate labelled reference data (extended XYZ) from a preset: structures from its samplers
(:mod:`gnnff.data.samplers`), labels from its classical potential or from its ``labels``
reference (a teacher, :mod:`gnnff.data.reference`).

Outputs in ``out_dir``: ``train.extxyz``, ``valid.extxyz``, ``test_id.extxyz`` (ID pool split
by ``id_split``), one ``<split>.extxyz`` per OOD split, ``reference_md/<system>_<T>K.extxyz``
(reference-potential NVT trajectories) and ``manifest.json``. The same preset and seed give
byte-identical files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ase import Atoms

import gnnff
from gnnff.data.presets import load_preset
from gnnff.data.samplers import SampleJob, cached_sample, samples_dir, write_extxyz
from gnnff.data.structures import density_g_cm3
from gnnff.errors import GNNFFError
from gnnff.io_utils import atomic_write_json, sha256_file
from gnnff.lammps.library import potential_file


class DataGenerationError(GNNFFError, RuntimeError):
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
    samples = samples_dir(labeller, preset, seed)
    bar = tqdm(
        total=len(points) + len(ref_units), desc="reference MD", unit="run", disable=not progress
    )
    state_meta = []
    for sp in points:
        info = {
            "config_type": sp.system["name"],
            "temperature": sp.temperature,
            "density_factor": sp.density_factor,
            "state_point": sp.label,
        }
        job = SampleJob(preset, sp.system, sp.n_atoms, sp.density_factor, sp.temperature,
                        sp.frames, spacing, seed, sp.index, info)  # fmt: skip
        frames = cached_sample(samples, f"{sp.index:04d}_{sp.label}", job)
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
        n = sysd.get("n_atoms", [None])[-1] if sysd["kind"] == "amorphous" else None
        info = {"config_type": name, "temperature": temp, "reference_md": True}
        n_frames = int(ref["time_fs"] // ref["frame_spacing_fs"])
        job = SampleJob(preset, {**sysd, "sampler": "md"}, n, 1.0, temp, n_frames,
                        ref["frame_spacing_fs"], seed, 100_000 + k, info)  # fmt: skip
        ref_outputs[f"{name}_{temp:g}K"] = cached_sample(
            samples, f"ref_{k:04d}_{name}_{temp:g}K", job
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
    log: dict = {"skipped": {}}  # (frames read from the cache: printed, not in the manifest,
    # which must be the same for a fresh and a resumed run)
    new: list[dict[str, list[Atoms]]] = [{}, {}]
    for k, group in enumerate((outputs, ref_outputs)):
        for name, frames in group.items():
            res = labeller.label(frames, progress=progress, desc=f"labels {name}")
            new[k][name] = res.frames
            if res.from_cache and progress:
                print(f"  {name}: {res.from_cache} of {len(frames)} labels from the cache")
            if res.skipped:
                log["skipped"][name] = res.skipped
    return new[0], new[1], log


def _write_outputs(
    out_dir: Path, outputs: dict[str, list[Atoms]], ref_outputs: dict[str, list[Atoms]]
) -> dict[str, int]:
    files = {}
    for name, frames in outputs.items():
        write_extxyz(out_dir / f"{name}.extxyz", frames)
        files[f"{name}.extxyz"] = len(frames)
    for name, frames in ref_outputs.items():
        write_extxyz(out_dir / "reference_md" / f"{name}.extxyz", frames)
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
