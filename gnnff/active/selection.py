"""Selecting frames to label from failed exploration runs.

Candidates are the failure frames of every failed run (``failing.extxyz``: the snapshots before
the first failed check and the failing one). They are ordered so that a cap keeps the most
informative first: the failing snapshot of every run, then the one before it of every run, and
so on (round-robin over runs, runs in config order). Near-duplicates are dropped: two frames of
the same run whose atoms moved by less than ``min_distance`` A RMS (minimum-image
displacements, atoms in the same order) count as one. Frames of different runs are never
duplicates: they come from different starts or thermostat seeds.
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
