"""Failing frames: the configurations around the first failed stability check, for relabelling.

One file per run, ``failing.extxyz`` (extended XYZ, readable by ``ase.io.read(path, ":")``):
the last K checked configurations before the first failed check, then the failing one. Atoms
carry chemical symbols and positions only (no energies or forces: those are the model's
predictions, not labels); frames written by LAMMPS also carry per-atom ``id`` (LAMMPS atom ID)
and ``type``. Every frame's info holds the fields of :data:`INFO_FIELDS`:

- ``step`` (int), ``time_ps`` (ps since the monitored run started, LAMMPS: its own time),
  ``temperature`` (K) of that frame;
- ``criterion``, ``pair`` ("none" when the criterion has no species pair), ``value`` and
  ``threshold`` of the first failed check, ``atom_indices`` (0-based indices in the frame of
  the closest pair, ``[-1, -1]`` when not known) and ``failed_step`` (the step of that check),
  identical on every frame of the file;
- ``is_failure`` (True on the failing frame only) and ``source`` (which run wrote it).

``fix gnnff/stability`` (C++, gnnff/lammps/gnnff_frames.cpp) writes the same names; this module
is the Python writer (``gnnff lammps run`` uses it for failures found only by the Python checks,
e.g. the RDF; the ASE side can use it the same way).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from gnnff.stability.snapshot import Snapshot

DEFAULT_KEEP = 5  # checked frames kept before the failing one

FAILING_FILE = "failing.extxyz"
INFO_FIELDS: tuple[str, ...] = (
    "step", "time_ps", "temperature", "criterion", "pair", "value", "threshold",
    "atom_indices", "is_failure", "failed_step", "source",
)  # fmt: skip


def failure_info(failure: dict[str, Any], source: str) -> dict[str, Any]:
    """The failure fields shared by every frame of the file, from a tracker's ``first_failure``
    (criterion, value, threshold, optional pair / atom_indices, step)."""
    value = failure.get("value")
    threshold = failure.get("threshold")
    idx = failure.get("atom_indices") or [-1, -1]
    return {
        "criterion": str(failure.get("criterion")),
        "pair": str(failure.get("pair") or "none"),
        "value": float("nan") if value is None else float(value),
        "threshold": float("nan") if threshold is None else float(threshold),
        "atom_indices": np.asarray(idx, dtype=int),
        "failed_step": int(failure.get("step", -1)),
        "source": str(source),
    }


def write_failing_frames(
    path: str | os.PathLike[str],
    frames: Sequence[Snapshot],
    failure: dict[str, Any],
    source: str,
) -> None:
    """Write ``frames`` (the earlier checked frames, then the failing one last) to ``path`` as
    extended XYZ with the :data:`INFO_FIELDS`. Raises ValueError for an empty list or frames
    without positions."""
    from ase import Atoms
    from ase.io import write

    if not frames:
        raise ValueError("write_failing_frames needs at least the failing frame")
    shared = failure_info(failure, source)
    images = []
    for k, snap in enumerate(frames):
        if snap.positions is None:
            raise ValueError(f"frame at step {snap.step} has no positions to write")
        atoms = Atoms(numbers=snap.numbers, positions=snap.positions, cell=snap.cell, pbc=snap.pbc)
        temp = snap.temperature_value()
        atoms.info.update({
            "step": int(snap.step), "time_ps": float(snap.time_ps),
            "temperature": float("nan") if temp is None else float(temp),
            **shared, "is_failure": k == len(frames) - 1,
        })  # fmt: skip
        images.append(atoms)
    write(os.fspath(path), images, format="extxyz")


def offending_atoms(
    numbers: np.ndarray,
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    failure: dict[str, Any],
    cutoff: float = 6.0,
) -> list[int]:
    """0-based indices of the closest pair of the failing species pair (``close_contact``
    failures; [] for other criteria or when no such pair lies within ``cutoff`` A)."""
    if failure.get("criterion") != "close_contact" or not failure.get("pair"):
        return []
    from ase.data import chemical_symbols

    from .geometry import half_pair_distances

    a_sym, b_sym = str(failure["pair"]).split("-")
    i, j, d = half_pair_distances(positions, cell, pbc, cutoff)
    sym = np.array([chemical_symbols[z] for z in numbers])
    match = ((sym[i] == a_sym) & (sym[j] == b_sym)) | ((sym[i] == b_sym) & (sym[j] == a_sym))
    if not match.any():
        return []
    k = int(np.argmin(np.where(match, d, np.inf)))
    return sorted({int(i[k]), int(j[k])})


def read_failing_frames(path: str | os.PathLike[str]) -> list[Any]:
    """The frames of a ``failing.extxyz`` (either engine), oldest first, the failing one last;
    ``info['atom_indices']`` as a list of ints ([] when unknown)."""
    from ase.io import read

    got = read(os.fspath(path), index=":")
    frames = got if isinstance(got, list) else [got]
    for a in frames:
        idx = [int(x) for x in np.ravel(a.info.get("atom_indices", []))]
        a.info["atom_indices"] = [] if idx == [-1, -1] else idx
    return frames
