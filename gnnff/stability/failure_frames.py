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
    items: deque[Snapshot] = field(default_factory=deque)

    def __post_init__(self) -> None:
        if self.keep < 0:
            raise ValueError(f"keep must be >= 0 snapshots, got {self.keep}")
        self.items = deque(maxlen=self.keep + 1)

    def record(self, step: int, atoms: Atoms) -> None:
        self.items.append(Snapshot(int(step), _bare_copy(atoms)))

    def up_to(self, step: int) -> list[Snapshot]:
        """Snapshots at or before ``step`` (at most ``keep + 1``, oldest first)."""
        got = [s for s in self.items if s.step <= step]
        return got[-(self.keep + 1):]


def _bare_copy(atoms: Atoms) -> Atoms:
    """Numbers, positions, cell, pbc and momenta only: no calculator, no info."""
    momenta = atoms.arrays.get("momenta")
    return Atoms(atoms.numbers.copy(), positions=atoms.positions.copy(),
                 cell=atoms.cell.array.copy(), pbc=atoms.pbc.copy(),
                 momenta=None if momenta is None else momenta.copy())


def _temperature(atoms: Atoms) -> float | None:
    """Instantaneous kinetic temperature (K) from the momenta, or None without momenta."""
    from ase import units

    p = atoms.arrays.get("momenta")
    if p is None or len(atoms) == 0:
        return None
    masses = np.asarray(atoms.arrays["masses"]) if "masses" in atoms.arrays else None
    if masses is None:
        from ase.data import atomic_masses

        masses = atomic_masses[atoms.numbers]
    ekin = 0.5 * float(np.sum(np.asarray(p) ** 2 / masses[:, None]))
    return ekin / (1.5 * units.kB * len(atoms))


def offending_atoms(atoms: Atoms, failure: dict[str, Any], cutoff: float = 6.0) -> list[int]:
    """Indices of the atoms a failed check points at (see the module docstring)."""
    criterion = failure.get("criterion")
    if criterion == "close_contact" and failure.get("pair"):
        from ase.data import chemical_symbols

        from .geometry import half_pair_distances

        a_sym, b_sym = str(failure["pair"]).split("-")
        i, j, d = half_pair_distances(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
        sym = np.array([chemical_symbols[z] for z in atoms.numbers])
        match = ((sym[i] == a_sym) & (sym[j] == b_sym)) | ((sym[i] == b_sym) & (sym[j] == a_sym))
        if not match.any():
            return []
        k = int(np.argmin(np.where(match, d, np.inf)))
        return sorted({int(i[k]), int(j[k])})
    return []


def failure_frames(snapshots: list[Snapshot], failure: dict[str, Any], dt_ps: float,
                   md_temperature: float | None, source_run: str) -> list[Atoms]:
    """Label-free frames with the provenance of the module docstring (oldest first)."""
    frames = []
    fail_step = int(failure.get("step", snapshots[-1].step if snapshots else 0))
    for snap in snapshots:
        a = _bare_copy(snap.atoms)
        is_failing = snap.step == fail_step
        temp = _temperature(a)
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
            b = _bare_copy(a)
            b.info.update(a.info)
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

    got = ase.io.read(str(path), index=":")
    frames: list[Atoms] = got if isinstance(got, list) else [got]
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
