"""Distillation from no data: the bootstrap data set of ``gnnff stabilize``.

With a ``bootstrap`` section and no ``initial_model`` the loop starts from nothing: a gnnff data
preset samples the structures (rattled and strained crystals, sampler MD of amorphous cells,
reference-MD trajectories) exactly as ``gnnff data generate`` does, the loop's ``reference``
(typically a foundation-model teacher) labels every frame, and round 0 trains on the result.
Every later failure or committee frame is labelled by the same reference.

The data set is written to ``round_000/bootstrap/`` (``train``/``valid``/``test_id`` splits,
``reference_md/``, ``manifest.json`` with the labels' provenance); labels and sampled structures
are cached per frame in ``round_000/label_cache/``, so an interrupted bootstrap (Ctrl-C,
kill -9) continues with the frames still missing. ``round_000/bootstrap.json`` marks it done.

Stability references come from the reference's side, never from the student's MD: the
close-contact per-pair minima are those of the reference-labelled bootstrap training frames
(structures the reference labelled; frames it could not label are dropped); a run starting from
a bootstrap ``reference_md/`` trajectory is judged against that trajectory's RDF, and every
other run of a bootstrapped loop without the ``rdf`` criterion. An exploration run may start
from any bootstrap file: ``structure: "bootstrap:train.extxyz"``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from gnnff.io_utils import atomic_write_json

from .config import BOOTSTRAP_PREFIX as PREFIX
from .config import StabilizeConfigError

REFERENCE_MD = "reference_md/"


def check_preset(bs: dict[str, Any], reference: dict[str, Any], runs: list[dict]) -> dict:
    """The bootstrap preset (labels set to ``reference``), checked before anything runs:
    it must yield a train and a valid split, the reference must label its species, and every
    ``bootstrap:FILE`` exploration start must name a file it will write.

    Raises :class:`StabilizeConfigError` naming the problem and the fix."""
    preset = load_bootstrap_preset(bs, reference)
    files = bootstrap_files(preset)
    if not {"train.extxyz", "valid.extxyz"} <= set(files):
        raise StabilizeConfigError(
            f"bootstrap.preset {preset['name']!r} yields {files}, without a train and a valid "
            "split: give it systems with split: id and id_split {train, valid, test_id}"
        )
    for k, run in enumerate(runs):
        text = run["structure"]
        if text.startswith(PREFIX) and text[len(PREFIX) :] not in files:
            raise StabilizeConfigError(
                f"explore.runs[{k}].structure {text!r}: the bootstrap data set will hold "
                f"{files}; name one of them after {PREFIX!r}"
            )
    return preset


def load_bootstrap_preset(bs: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """The bootstrap preset with its ``labels`` set to the loop's reference (a preset's own
    ``labels`` are replaced: one reference labels every frame of the loop).

    Raises :class:`StabilizeConfigError` for an unknown or malformed preset, or a reference that
    cannot label the preset's species."""
    from gnnff.data.presets import PresetError, load_preset
    from gnnff.data.reference import ReferenceSpecError, validate_reference

    try:
        preset = load_preset(bs["preset"], quick=bs["quick"])
    except (PresetError, FileNotFoundError, ValueError) as exc:
        raise StabilizeConfigError(f"bootstrap.preset: {exc}") from None
    species = list(preset["lammps"]["elements"])
    try:
        validate_reference(reference, species=species)
    except ReferenceSpecError as exc:
        raise StabilizeConfigError(
            f"bootstrap.preset {preset['name']!r} holds {species}: {exc}"
        ) from None
    preset["labels"] = dict(reference)
    return preset


def bootstrap_files(preset: dict[str, Any]) -> list[str]:
    """The extxyz files the bootstrap data set will hold (relative to its folder)."""
    splits = {s["split"] for s in preset["systems"]}
    files = []
    if "id" in splits:
        fractions = preset.get("id_split") or {"train": 0.8, "valid": 0.1, "test_id": 0.1}
        files += [f"{name}.extxyz" for name in fractions]
    files += [f"{s}.extxyz" for s in sorted(splits - {"id"})]
    ref = preset.get("reference_md") or {}
    files += [
        f"reference_md/{s}_{float(t):g}K.extxyz"
        for s in ref.get("systems", [])
        for t in ref.get("temperatures", [])
    ]
    return files


def criteria_without_rdf() -> list[str]:
    """The default stability criteria less ``rdf`` (for runs without a reference RDF)."""
    from gnnff.stability.config import default_criteria

    return [c for c in default_criteria() if c != "rdf"]


def data_dir(rdir0: Path) -> Path:
    return rdir0 / "bootstrap"


def data_overrides(rdir0: Path, train_config: str, placeholder: bool = False) -> list[str]:
    """``--set`` overrides pointing a training config at the bootstrap data set in ``rdir0``
    (absolute paths; labels read as written in its extxyz files, so no ``*_key``).
    ``placeholder``: the files do not exist yet; the config file itself stands in for them so
    that every other field can be checked before anything is written."""
    data = data_dir(rdir0).resolve()
    files = {"train": data / "train.extxyz", "valid": data / "valid.extxyz"}
    test = data / "test_id.extxyz"
    if placeholder:
        files = dict.fromkeys(files, Path(train_config).resolve())
    sets = [f"data.{k}={v}" for k, v in files.items()]
    sets.append(f"data.test={test if test.is_file() and not placeholder else 'null'}")
    sets += [f"data.{k}_key=null" for k in ("energy", "forces", "stress", "virial")]
    if placeholder:
        sets.append("data.cache=null")
    return sets


def rdf_reference(base, base_frames: list, text: str, trajectory: str):
    """The stability reference of a run starting from bootstrap trajectory ``text`` (file
    ``trajectory``): the close-contact minima of ``base`` (the bootstrap training frames
    ``base_frames``) and the RDF averaged over every frame of the trajectory."""
    from gnnff.stability.reference import StabilityReference
    from gnnff.training.data import read_frames

    return StabilityReference.from_frames(
        base_frames,
        rdf_frames=read_frames(trajectory),
        distance_cutoff=base.distance_cutoff,
        source=f"{base.source}; RDF of {text}",
    )


def resolve_structure(text: str, rdir0: Path) -> str:
    """An exploration start's file: ``bootstrap:FILE`` -> the file in the bootstrap data set."""
    if text.startswith(PREFIX):
        return str(data_dir(rdir0) / text[len(PREFIX) :])
    return text


def run_bootstrap(
    bs: dict[str, Any], reference: dict[str, Any], rdir0: Path, log=print
) -> tuple[dict[str, Any], float]:
    """Generate (or finish, or read back) the bootstrap data set in ``rdir0``.

    Returns (``bootstrap.json``'s content: preset, seed, files and frame counts, the labels'
    provenance and skipped frames; the CPU seconds spent now). An interrupted earlier call left
    at most unfinished temporary folders (removed here) and per-frame cache files (reused)."""
    done = rdir0 / "bootstrap.json"
    if done.is_file():
        return json.loads(done.read_text()), 0.0
    from gnnff.data.generate import generate_dataset

    for tmp in rdir0.glob(".bootstrap.*"):
        shutil.rmtree(tmp, ignore_errors=True)  # the unfinished folder of a killed run
    preset = load_bootstrap_preset(bs, reference)
    log(f"bootstrap: sampling {preset['name']} and labelling every frame with the reference")
    t0 = time.process_time()
    manifest = generate_dataset(
        preset,
        data_dir(rdir0),
        seed=bs["seed"],
        overwrite=True,
        progress=False,
        label_cache=rdir0 / "label_cache",
    )
    labels = {k: v for k, v in manifest["labels"].items() if k != "from_cache"}
    info = {
        "preset": manifest["preset"],
        "quick": manifest["quick"],
        "seed": manifest["seed"],
        "species": manifest["species"],
        "frames": manifest["frames"],
        "labels": labels,
    }
    atomic_write_json(done, info)
    return info, time.process_time() - t0
