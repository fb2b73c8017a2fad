"""Labelling frames with a reference (preset, ASE calculator or teacher), resumably.

:class:`Labeller` calls the reference frame by frame. With a ``cache_dir`` every frame's result
(labels, or the reason it was skipped) is written atomically to its own file, keyed by the
frame's content and the reference's identity (:func:`gnnff.data.reference.reference_id`): an
interrupted labelling run (Ctrl-C, kill -9) loses at most the frame in flight, and the same
command run again labels only what is missing.

A frame whose labelling raises or returns non-finite values, or whose closest pair is below
``gnnff data check``'s 0.7 A floor, is skipped and counted with the reason; the run goes on.
If every frame of a batch fails, :class:`LabellingError` stops it with the reasons.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from gnnff.errors import GNNFFError
from gnnff.io_utils import atomic_write, atomic_write_json

from .check import MIN_DISTANCE  # A, the floor of `gnnff data check`
from .reference import reference_id, resolve_calculator_class


class LabellingError(GNNFFError, RuntimeError):
    """Every frame failed: the reference cannot label this data (the reasons are listed)."""


@dataclass
class LabelResult:
    """Labelled frames (energy eV, forces eV/A, stress eV/A^3 when periodic, as calculator
    results) and the frames skipped, with reasons."""

    frames: list[Atoms] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    from_cache: int = 0


def frame_key(atoms: Atoms, ref_id: str) -> str:
    """sha256 of the frame's species, positions, cell, pbc and the reference identity."""
    h = hashlib.sha256(ref_id.encode())
    h.update(np.ascontiguousarray(atoms.numbers, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(atoms.positions, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(atoms.cell.array, dtype=np.float64).tobytes())
    h.update(np.asarray(atoms.pbc, dtype=np.int8).tobytes())
    return h.hexdigest()[:32]


class Labeller:
    """Calls the reference on single frames.

    ``spec``: a validated reference (:func:`gnnff.data.reference.validate_reference`).
    ``cache_dir``: folder of per-frame results (None: no cache). ``threads``: torch threads
    for a teacher (default: the spec's ``threads``, else torch's default).
    """

    def __init__(
        self, spec: dict[str, Any], cache_dir: str | Path | None = None, threads: int | None = None
    ) -> None:
        self.spec = spec
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.ref_id = reference_id(spec)
        self.lammps_spec: dict[str, Any] | None = None
        self.calc: Any = None
        self._threads = threads if threads is not None else spec.get("threads")
        if "preset" in spec:
            from .presets import load_preset

            self.lammps_spec = load_preset(spec["preset"])["lammps"]

    def calculator(self) -> Any:
        """The reference as an ASE calculator (teacher or calculator specs; a preset labels
        through LAMMPS sessions instead and raises ReferenceSpecError here). Built on first use: a
        teacher takes seconds to load."""
        if self.lammps_spec is not None:
            from .reference import ReferenceSpecError

            raise ReferenceSpecError(
                "a preset reference labels periodic cells through LAMMPS; it is not an ASE "
                "calculator (use a teacher or calculator reference)"
            )
        return self._calculator()

    def _calculator(self) -> Any:
        """The ASE calculator, built on first use (a teacher takes seconds to load)."""
        if self.calc is None:
            if "teacher" in self.spec:
                from .teacher import build_teacher

                self.calc = build_teacher(self.spec["teacher"], self.spec.get("device", "cpu"))
            else:
                cls = resolve_calculator_class(self.spec["calculator"])
                self.calc = cls(**self.spec.get("kwargs", {}))
        return self.calc

    def _one(self, atoms: Atoms) -> tuple[np.ndarray, float, np.ndarray, np.ndarray | None]:
        """(positions, energy, forces, stress) of one frame; positions may be rounded to what
        the reference read (the preset route rounds them to what extxyz stores)."""
        if self.lammps_spec is not None:
            from .reference_md import ReferenceMD

            with ReferenceMD(atoms, self.lammps_spec, 1.0, 100.0) as md:
                # ReferenceMD works in LAMMPS's lower-triangular frame: x_lmp = x @ rot
                rot = np.linalg.solve(atoms.cell.array, md.atoms.cell.array)
                frame = md.label()
            stress = rot @ frame.get_stress(voigt=False) @ rot.T
            return (
                frame.positions @ rot.T,
                float(frame.get_potential_energy()),
                frame.get_forces() @ rot.T,
                stress,
            )
        a = atoms.copy()
        a.calc = self._calculator()
        energy = float(a.get_potential_energy())
        forces = np.asarray(a.get_forces(), dtype=np.float64)
        stress = None
        if a.pbc.all():
            try:
                stress = np.asarray(a.get_stress(voigt=False), dtype=np.float64)
            except Exception:  # noqa: BLE001 - a reference without stress is fine
                stress = None
        return atoms.positions.copy(), energy, forces, stress

    def _compute(self, atoms: Atoms) -> dict[str, Any]:
        """One frame's entry: ``{"labels": {...}}`` or ``{"skip": reason}``."""
        from .check import _min_distance

        d = _min_distance(atoms)
        if d < MIN_DISTANCE:
            return {
                "skip": f"closest pair {d:.3f} A < {MIN_DISTANCE} A (unphysical even for "
                "the reference)"
            }
        try:
            positions, energy, forces, stress = self._one(atoms)
        except Exception as exc:  # noqa: BLE001 - any reference failure skips the frame
            # not cached: a failure of the run (memory, a killed job) is retried on resume
            return {"skip": f"{type(exc).__name__}: {exc}", "transient": True}
        if not (
            np.isfinite(energy)
            and np.all(np.isfinite(forces))
            and (stress is None or np.all(np.isfinite(stress)))
        ):
            return {"skip": "non-finite label"}
        labels: dict[str, Any] = {"positions": positions, "energy": energy, "forces": forces}
        if stress is not None:
            labels["stress"] = stress
        return {"labels": labels}

    def _cached(self, key: str) -> dict[str, Any] | None:
        if self.cache_dir is None:
            return None
        skip = self.cache_dir / f"{key}.skip.json"
        if skip.is_file():
            return {"skip": json.loads(skip.read_text())["reason"]}
        path = self.cache_dir / f"{key}.npz"
        if not path.is_file():
            return None
        with np.load(path) as z:
            labels = {k: z[k] for k in z.files}
        labels["energy"] = float(labels["energy"])
        return {"labels": labels}

    def _store(self, key: str, entry: dict[str, Any]) -> None:
        if self.cache_dir is None:
            return
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        if "skip" in entry:
            if not entry.get("transient"):  # only what a rerun would find again
                atomic_write_json(self.cache_dir / f"{key}.skip.json", {"reason": entry["skip"]})
            return
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in entry["labels"].items()}

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        atomic_write(self.cache_dir / f"{key}.npz", write)

    def label(
        self, frames: list[Atoms], progress: bool = False, desc: str = "labelling"
    ) -> LabelResult:
        """Label ``frames`` in order (cached ones are read back, not recomputed).

        Raises :class:`LabellingError` when frames were given and none could be labelled.
        """
        from tqdm import tqdm

        if self.lammps_spec is None and frames:
            self._calculator()  # a reference that cannot be built fails here, not per frame
        with _torch_threads(self._threads if "teacher" in self.spec else None):
            return self._label(frames, progress, desc, tqdm)

    def _label(self, frames: list[Atoms], progress: bool, desc: str, tqdm: Any) -> LabelResult:
        res = LabelResult()
        for k, atoms in enumerate(tqdm(frames, desc=desc, unit="frame", disable=not progress)):
            key = frame_key(atoms, self.ref_id)
            entry = self._cached(key)
            if entry is None:
                entry = self._compute(atoms)
                self._store(key, entry)
            else:
                res.from_cache += 1
            if "skip" in entry:
                res.skipped.append(
                    {
                        "frame": k,
                        "source_file": atoms.info.get("source_file"),
                        "step": atoms.info.get("step"),
                        "reason": entry["skip"],
                    }
                )
                continue
            res.frames.append(_labelled_frame(atoms, entry["labels"]))
        if frames and not res.frames:
            reasons = sorted({s["reason"] for s in res.skipped})
            raise LabellingError(
                f"the reference labelled none of the {len(frames)} frames: {'; '.join(reasons)}"
            )
        return res


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """torch's intra-op threads set to ``n`` for the block only (the teacher's labelling), so
    that the training and MD around it keep theirs."""
    if not n:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _labelled_frame(atoms: Atoms, labels: dict[str, Any]) -> Atoms:
    out = Atoms(atoms.numbers, positions=labels["positions"], cell=atoms.cell, pbc=atoms.pbc)
    out.info.update(
        {
            k: v
            for k, v in atoms.info.items()
            if isinstance(v, (int, float, str, bool, np.integer, np.floating))
        }
    )
    results = {"energy": float(labels["energy"]), "forces": np.asarray(labels["forces"])}
    if "stress" in labels:
        results["stress"] = np.asarray(labels["stress"])
    out.calc = SinglePointCalculator(out, **results)
    return out
