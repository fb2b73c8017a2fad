"""Selecting frames to label from failed exploration runs.

Candidates are the failure frames of every failed run (``failing.extxyz``: the snapshots before
the first failed check and the failing one). They are ordered so that a cap keeps the most
informative first: the failing snapshot of every run, then the one before it of every run, and
so on (round-robin over runs, runs in config order). Near-duplicates are dropped: two frames of
the same composition whose fingerprints (the sorted per-atom nearest-neighbour distances, a
permutation- and translation-invariant descriptor) differ by less than ``min_distance`` A RMS
count as one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms


def fingerprint(atoms: Atoms, cutoff: float = 4.0) -> np.ndarray:
    """Sorted nearest-neighbour distance of every atom [N] (A; ``cutoff`` when none)."""
    from gnnff.potentials.neighbors import neighbor_list

    ei, shift = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    nn = np.full(len(atoms), cutoff)
    if ei.shape[1]:
        r = np.linalg.norm(atoms.positions[ei[1]] - atoms.positions[ei[0]] + shift, axis=1)
        np.minimum.at(nn, ei[0], r)
    return np.sort(nn)


def _round_robin(per_run: list[list[Atoms]]) -> list[Atoms]:
    ordered: list[Atoms] = []
    depth = max((len(r) for r in per_run), default=0)
    for d in range(depth):
        for frames in per_run:
            if d < len(frames):
                ordered.append(frames[len(frames) - 1 - d])  # newest (failing) first
    return ordered


def select_frames(failure_files: list[Path], max_frames: int,
                  min_distance: float) -> tuple[list[Atoms], dict[str, int]]:
    """(selected frames, counts) from the ``failing.extxyz`` files of one round."""
    from gnnff.stability.failure_frames import read_failure_frames

    per_run = [read_failure_frames(p) for p in failure_files]
    candidates = _round_robin(per_run)
    chosen: list[Atoms] = []
    prints: list[tuple[str, np.ndarray]] = []
    duplicates = 0
    for a in candidates:
        if len(chosen) >= max_frames:
            break
        key = a.get_chemical_formula()
        fp = fingerprint(a)
        if any(k == key and np.sqrt(np.mean((fp - q) ** 2)) < min_distance for k, q in prints):
            duplicates += 1
            continue
        prints.append((key, fp))
        chosen.append(a)
    counts = {"candidates": len(candidates), "duplicates": duplicates,
              "selected": len(chosen), "capped": max(0, len(candidates) - duplicates
                                                      - len(chosen))}
    return chosen, counts
