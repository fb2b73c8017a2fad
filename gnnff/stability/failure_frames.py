"""Failure frames: the configurations just before and at the first failed stability check.

An MD run that fails leaves ``failing.extxyz``: the last ``K`` snapshots before the first
failed check plus the failing one (``K`` = :data:`DEFAULT_KEEP` unless configured), as plain
structures **without any calculator results** (the model's energies and forces on them are
what went wrong, never labels), each with this provenance in ``atoms.info``:

- ``step`` (MD step), ``time_ps``, ``md_temperature_K`` (the run's target temperature, or
  None), ``temperature_K`` (instantaneous kinetic temperature of the snapshot, if velocities
  are known);
- ``criterion``, ``pair``, ``value``, ``threshold`` of the first failed check (the same on
  every frame of the file), ``failing`` (True on the failing snapshot only);
- ``atoms``: the indices of the offending atoms in the failing snapshot (the closest pair of
  the failing species pair for ``close_contact``; the atom with the largest force for
  ``finite``/force criteria, when forces are known), as a list; empty when no atom is singled
  out (temperature, RDF, energy drift);
- ``source_run``: the run folder (or any label the caller gives).

The same fields come from both engines (``gnnff md`` and ``gnnff lammps run``), so active
learning (``gnnff stabilize``) reads them without caring which engine ran.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

FILE_NAME = "failing.extxyz"
DEFAULT_KEEP = 5
INFO_KEYS = ("step", "time_ps", "md_temperature_K", "temperature_K", "criterion", "pair",
             "value", "threshold", "failing", "atoms", "source_run")


@dataclass
class Snapshot:
    """One configuration of the run (no model labels)."""

    step: int
    atoms: Atoms  # positions, cell, pbc, numbers (and momenta when known); calc = None


@dataclass
class SnapshotBuffer:
    """The last ``keep + 1`` snapshots, recorded at every stability check."""

    keep: int = DEFAULT_KEEP
    items: deque = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.keep < 0:
            raise ValueError(f"keep must be >= 0 snapshots, got {self.keep}")
        self.items = deque(maxlen=self.keep + 1)

    def record(self, step: int, atoms: Atoms) -> None:
        a = Atoms(atoms.numbers, positions=atoms.positions.copy(), cell=atoms.cell.copy(),
                  pbc=atoms.pbc.copy())
        if atoms.has("momenta"):
            a.set_momenta(atoms.get_momenta().copy())
        self.items.append(Snapshot(int(step), a))

    def up_to(self, step: int) -> list[Snapshot]:
        """Snapshots at or before ``step`` (at most ``keep + 1``, oldest first)."""
        got = [s for s in self.items if s.step <= step]
        return got[-(self.keep + 1):]


def offending_atoms(atoms: Atoms, failure: dict[str, Any], cutoff: float = 6.0) -> list[int]:
    """Indices of the atoms a failed check points at (see the module docstring)."""
    criterion = failure.get("criterion")
    if criterion == "close_contact" and failure.get("pair"):
        from gnnff.potentials.neighbors import neighbor_list

        a_sym, b_sym = str(failure["pair"]).split("-")
        ei, shift = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
        if ei.shape[1] == 0:
            return []
        sym = np.array(atoms.get_chemical_symbols())
        si, sj = sym[ei[0]], sym[ei[1]]
        match = ((si == a_sym) & (sj == b_sym)) | ((si == b_sym) & (sj == a_sym))
        if not match.any():
            return []
        vec = atoms.positions[ei[1]] - atoms.positions[ei[0]] + shift
        r = np.where(match, np.linalg.norm(vec, axis=1), np.inf)
        k = int(np.argmin(r))
        return sorted({int(ei[0, k]), int(ei[1, k])})
    return []


def failure_frames(snapshots: list[Snapshot], failure: dict[str, Any], dt_ps: float,
                   md_temperature: float | None, source_run: str) -> list[Atoms]:
    """Label-free frames with the provenance of the module docstring (oldest first)."""
    frames = []
    fail_step = int(failure.get("step", snapshots[-1].step if snapshots else 0))
    for snap in snapshots:
        a = snap.atoms.copy()
        a.calc = None
        is_failing = snap.step == fail_step
        temp = float(a.get_temperature()) if a.has("momenta") else None
        a.info.update({
            "step": snap.step,
            "time_ps": snap.step * dt_ps,
            "md_temperature_K": md_temperature,
            "temperature_K": temp,
            "criterion": failure.get("criterion"),
            "pair": failure.get("pair"),
            "value": failure.get("value"),
            "threshold": failure.get("threshold"),
            "failing": is_failing,
            "atoms": offending_atoms(a, failure) if is_failing else [],
            "source_run": source_run,
        })
        frames.append(a)
    return frames


def write_failure_frames(path: str | Path, frames: list[Atoms]) -> Path:
    """Write ``frames`` to an extxyz file atomically (no calculator results)."""
    import ase.io

    from gnnff.io_utils import atomic_write

    def _write(p: Path) -> None:
        clean = []
        for a in frames:
            b = a.copy()
            b.calc = None
            for key in list(b.info):
                if b.info[key] is None:
                    b.info[key] = "None"  # extxyz cannot store None
                elif isinstance(b.info[key], list):
                    b.info[key] = " ".join(map(str, b.info[key])) or "-"
            clean.append(b)
        ase.io.write(str(p), clean, format="extxyz")

    return atomic_write(Path(path), _write)


def read_failure_frames(path: str | Path) -> list[Atoms]:
    """Frames of a ``failing.extxyz``, with ``info['atoms']`` back as a list of ints."""
    import ase.io

    frames = ase.io.read(str(path), index=":")
    for a in frames:
        raw = a.info.get("atoms", "-")
        if isinstance(raw, (int, np.integer)):
            a.info["atoms"] = [int(raw)]
        elif isinstance(raw, str):
            a.info["atoms"] = [] if raw in ("-", "") else [int(x) for x in raw.split()]
        else:
            a.info["atoms"] = [int(x) for x in np.ravel(raw)]
        for key in INFO_KEYS:
            if a.info.get(key) == "None":
                a.info[key] = None
    return frames
