"""Selecting frames to label from failed exploration runs.

Candidates are the failure frames of every failed run (``failing.extxyz``: the snapshots before
the first failed check and the failing one). They are ordered so that a cap keeps the most
informative first: the failing snapshot of every run, then the one before it of every run, and
so on (round-robin over runs, runs in config order). Near-duplicates are dropped: two frames of
the same run whose atoms moved by less than ``min_distance`` A RMS (minimum-image
displacements, atoms in the same order) count as one. Frames of different runs are never
duplicates: they come from different starts or thermostat seeds.

With ``select.committee``, committee candidates (``committee.extxyz``: frames whose max force
deviation lies in [f_lo, f_hi), :mod:`gnnff.active.committee`) are added after the failure
frames by :func:`select_committee_frames`, with the same distance, under their own cap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms


def rms_displacement(a: Atoms, b: Atoms) -> float:
    """RMS minimum-image displacement (A) between two frames of one run (same atoms, order
    and cell)."""
    from ase.geometry import find_mic

    d, _ = find_mic(b.positions - a.positions, a.cell, a.pbc)
    return float(np.sqrt(np.mean(np.sum(d**2, axis=1))))


def _round_robin(per_run: list[list[Atoms]]) -> list[Atoms]:
    ordered: list[Atoms] = []
    depth = max((len(r) for r in per_run), default=0)
    for d in range(depth):
        for frames in per_run:
            if d < len(frames):
                ordered.append(frames[len(frames) - 1 - d])  # newest (failing) first
    return ordered


def select_frames(
    failure_files: list[Path], max_frames: int, min_distance: float
) -> tuple[list[Atoms], dict[str, int]]:
    """(selected frames, counts) from the ``failing.extxyz`` files of one round."""
    from gnnff.stability.failing import read_failing_frames

    per_run = [read_failing_frames(p) for p in failure_files]
    for path, frames in zip(failure_files, per_run, strict=True):
        for a in frames:
            a.info["source_file"] = str(path)  # the run (failing file) a frame comes from
    candidates = _round_robin(per_run)
    chosen: list[Atoms] = []
    duplicates = 0
    for a in candidates:
        if len(chosen) >= max_frames:
            break
        same_run = [
            c
            for c in chosen
            if c.info.get("source_file") == a.info.get("source_file") and len(c) == len(a)
        ]
        if any(rms_displacement(c, a) < min_distance for c in same_run):
            duplicates += 1
            continue
        chosen.append(a)
    counts = {
        "candidates": len(candidates),
        "duplicates": duplicates,
        "selected": len(chosen),
        "capped": max(0, len(candidates) - duplicates - len(chosen)),
    }
    return chosen, counts


def _run_of(a: Atoms) -> str:
    """The exploration run (folder) a selected frame comes from."""
    return str(Path(str(a.info.get("source_file", ""))).parent)


def select_committee_frames(
    committee_files: list[Path],
    chosen: list[Atoms],
    max_frames: int,
    min_distance: float,
    f_lo: float,
    f_hi: float,
) -> tuple[list[Atoms], dict[str, int]]:
    """(selected committee frames, counts) from the ``committee.extxyz`` files of one round.

    Committee candidates come after the failure frames ``chosen`` (which keep priority): a frame
    is dropped when its ``model_deviation`` is outside ``[f_lo, f_hi)`` eV/A (``>= f_hi``:
    unphysical, never labelled) or when it lies within ``min_distance`` A RMS of a frame of the
    same run (the same folder) already chosen, failure or committee frame. Order: round-robin
    over runs, the largest deviation of each run first; at most ``max_frames`` are kept.
    Counts: ``committee_candidates`` (frames in the files), ``committee_out_of_range``,
    ``committee_duplicates``, ``committee_selected``.
    """
    import ase.io

    per_run: list[list[Atoms]] = []
    for path in committee_files:
        exists = Path(path).is_file() and Path(path).stat().st_size > 0
        frames = ase.io.read(str(path), index=":") if exists else []  # missing/empty: none
        for a in frames:
            a.info["source_file"] = str(path)
        per_run.append(sorted(frames, key=lambda a: -float(a.info["model_deviation"])))
    candidates = [
        frames[d] for d in range(max((len(f) for f in per_run), default=0)) for frames in per_run
        if d < len(frames)
    ]  # fmt: skip
    kept: list[Atoms] = []
    out_of_range = duplicates = 0
    for a in candidates:
        if len(kept) >= max_frames:
            break
        if not f_lo <= float(a.info["model_deviation"]) < f_hi:
            out_of_range += 1
            continue
        same_run = [c for c in chosen + kept if _run_of(c) == _run_of(a) and len(c) == len(a)]
        if any(rms_displacement(c, a) < min_distance for c in same_run):
            duplicates += 1
            continue
        kept.append(a)
    return kept, {
        "committee_candidates": len(candidates),
        "committee_out_of_range": out_of_range,
        "committee_duplicates": duplicates,
        "committee_selected": len(kept),
    }
