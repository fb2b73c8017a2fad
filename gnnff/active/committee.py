"""Committee (query-by-committee) selection for ``gnnff stabilize``: the DP-GEN convention.

A committee is K models trained on the same data with different seeds: the main model (which
drives the MD) and K-1 members. Every ``interval`` MD steps the members' forces on the current
frame are compared with the main model's by the DP-GEN maximum force deviation
(Zhang et al., Comput. Phys. Commun. 253, 107206 (2020), eq. 2):

    dev = max_i sqrt( < |F_i - <F_i>|^2 > ),    <.> the mean over the K committee models,

``F_i`` the force (eV/A) on atom i. ``dev`` (eV/A) sorts the checked frames:

- ``dev < f_lo``: *accurate* (the committee agrees; nothing to learn),
- ``f_lo <= dev < f_hi``: *candidate* (written to ``committee.extxyz`` for labelling),
- ``dev >= f_hi``: *failed* (treated as unphysical, e.g. a collapsed structure; not labelled).

The observer does not change the MD: positions, velocities and the random stream are those of a
run without a committee.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

COMMITTEE_FILE = "committee.extxyz"
COUNTS_FILE = "committee.json"


def max_force_deviation(forces: np.ndarray) -> float:
    """DP-GEN maximum force deviation (eV/A) of a committee's forces.

    ``forces``: shape (K, N, 3), eV/A, K >= 2 models, N >= 1 atoms. Returns
    ``max_i sqrt(mean_k |F_ki - mean_k F_ki|^2)`` (the population standard deviation over the
    models of each atom's force vector, its largest value over atoms). Raises ValueError for any
    other shape or non-finite forces.
    """
    f = np.asarray(forces, dtype=float)
    if f.ndim != 3 or f.shape[2] != 3 or f.shape[0] < 2 or f.shape[1] < 1:
        raise ValueError(f"forces must have shape (K >= 2 models, N >= 1 atoms, 3), got {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError("forces hold non-finite values; the deviation is undefined")
    dev = f - f.mean(axis=0, keepdims=True)
    per_atom = np.sqrt(np.mean(np.sum(dev**2, axis=2), axis=0))
    return float(per_atom.max())


def classify(dev: float, f_lo: float, f_hi: float) -> str:
    """``"accurate"`` (dev < f_lo), ``"candidate"`` (f_lo <= dev < f_hi) or ``"failed"``."""
    if dev < f_lo:
        return "accurate"
    return "candidate" if dev < f_hi else "failed"


class CommitteeObserver:
    """An observer for :func:`gnnff.calculators.md.run_md`: every ``interval`` steps (step 0
    included) computes the deviation of the main model's forces (the calculator results already
    on the MD's atoms) and the ``members``' forces (ASE calculators) on the same frame, counts
    the frame as accurate / candidate / failed and keeps candidates (positions, no labels) with
    their provenance in ``info``: step, time_ps, temperature (K), model_deviation (eV/A),
    source."""

    def __init__(
        self,
        members: Sequence[Any],
        f_lo: float,
        f_hi: float,
        interval: int,
        dt_fs: float,
        source: str,
    ) -> None:
        if not members:
            raise ValueError("a committee needs at least one member besides the main model")
        self.members, self.f_lo, self.f_hi = list(members), float(f_lo), float(f_hi)
        self.interval, self.dt_fs, self.source = int(interval), float(dt_fs), source
        self.counts = {"checked": 0, "accurate": 0, "candidate": 0, "failed": 0}
        self.frames: list[Atoms] = []
        self.max_deviation = 0.0

    def forces(self, atoms: Atoms) -> np.ndarray:
        """(K, N, 3) forces: the main model's (cached results of ``atoms.calc``), then each
        member's on a copy of the frame."""
        stack = [np.asarray(atoms.get_forces(), dtype=float)]
        for calc in self.members:
            frame = Atoms(
                numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc
            )
            frame.calc = calc
            stack.append(np.asarray(frame.get_forces(), dtype=float))
        return np.stack(stack)

    def __call__(self, atoms: Atoms, step: int) -> None:
        if step % self.interval:
            return
        dev = max_force_deviation(self.forces(atoms))
        kind = classify(dev, self.f_lo, self.f_hi)
        self.counts["checked"] += 1
        self.counts[kind] += 1
        self.max_deviation = max(self.max_deviation, dev)
        if kind == "candidate":
            frame = Atoms(
                numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc
            )
            frame.info.update(
                step=int(step),
                time_ps=step * self.dt_fs / 1000.0,
                temperature=float(atoms.get_temperature()),
                model_deviation=dev,
                source=self.source,
            )
            self.frames.append(frame)

    def write(self, out_dir: str | Path) -> dict[str, Any]:
        """Write ``committee.extxyz`` (the candidates; an empty file when none) and
        ``committee.json`` (counts, thresholds, largest deviation), atomically; returns the
        counts record."""
        import ase.io

        from gnnff.io_utils import atomic_write, atomic_write_json

        def writer(p: Path) -> None:
            if self.frames:
                ase.io.write(str(p), self.frames, format="extxyz")
            else:
                p.write_text("")

        out = Path(out_dir)
        atomic_write(out / COMMITTEE_FILE, writer)
        record = {
            **self.counts,
            "f_lo": self.f_lo,
            "f_hi": self.f_hi,
            "interval": self.interval,
            "models": len(self.members) + 1,
            "max_deviation": self.max_deviation,
        }
        atomic_write_json(out / COUNTS_FILE, record)
        return record


def read_counts(run_dirs: Sequence[Path]) -> dict[str, int] | None:
    """Summed accurate / candidate / failed counts of the runs' ``committee.json`` files; None
    when no run has one (no committee)."""
    total = {"checked": 0, "accurate": 0, "candidate": 0, "failed": 0}
    found = False
    for d in run_dirs:
        path = Path(d) / COUNTS_FILE
        if path.is_file():
            found = True
            rec = json.loads(path.read_text())
            for key in total:
                total[key] += int(rec[key])
    return total if found else None
