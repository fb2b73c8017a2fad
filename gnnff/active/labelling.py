"""Labelling selected frames with the reference method: a gnnff data preset (a classical
potential through the LAMMPS library, exactly as ``gnnff data generate`` labels) or any ASE
calculator (a DFT code for real users).

A frame whose labelling raises or returns non-finite values, or whose closest pair is below
``gnnff data check``'s 0.7 A floor, is skipped and counted with the reason; the loop goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from .config import resolve_calculator_class

MIN_DISTANCE = 0.7  # A, the floor of `gnnff data check`


@dataclass
class LabelResult:
    """Labelled frames (energy eV, forces eV/A, stress eV/A^3 when periodic, as calculator
    results) and the frames skipped, with reasons."""

    frames: list[Atoms] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)


class Labeller:
    """Calls the reference on single frames. ``spec`` is the validated ``reference`` section."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        if "preset" in spec:
            from gnnff.data.presets import load_preset

            self.lammps_spec = load_preset(spec["preset"])["lammps"]
            self.calc = None
        else:
            cls = resolve_calculator_class(spec["calculator"])
            self.calc = cls(**spec.get("kwargs", {}))

    def _one(self, atoms: Atoms) -> tuple[np.ndarray, float, np.ndarray, np.ndarray | None]:
        """(positions, energy, forces, stress) of one frame; positions may be rounded to what
        the reference read (the preset route rounds them to what extxyz stores)."""
        if self.calc is None:
            from gnnff.data.reference_md import ReferenceMD

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
        a.calc = self.calc
        energy = float(a.get_potential_energy())
        forces = np.asarray(a.get_forces(), dtype=np.float64)
        stress = None
        if a.pbc.all():
            try:
                stress = np.asarray(a.get_stress(voigt=False), dtype=np.float64)
            except Exception:  # noqa: BLE001 - a reference without stress is fine
                stress = None
        return atoms.positions.copy(), energy, forces, stress

    def label(self, frames: list[Atoms]) -> LabelResult:
        from gnnff.data.check import _min_distance

        res = LabelResult()
        for k, atoms in enumerate(frames):
            where = {
                "frame": k,
                "source_file": atoms.info.get("source_file"),
                "step": atoms.info.get("step"),
            }
            d = _min_distance(atoms)
            if d < MIN_DISTANCE:
                res.skipped.append(
                    {
                        **where,
                        "reason": f"closest pair {d:.3f} A < "
                        f"{MIN_DISTANCE} A (unphysical even for the reference)",
                    }
                )
                continue
            try:
                positions, energy, forces, stress = self._one(atoms)
            except Exception as exc:  # noqa: BLE001 - any reference failure skips the frame
                res.skipped.append({**where, "reason": f"{type(exc).__name__}: {exc}"})
                continue
            if not (
                np.isfinite(energy)
                and np.all(np.isfinite(forces))
                and (stress is None or np.all(np.isfinite(stress)))
            ):
                res.skipped.append({**where, "reason": "non-finite label"})
                continue
            out = Atoms(atoms.numbers, positions=positions, cell=atoms.cell, pbc=atoms.pbc)
            out.info.update(
                {
                    k: v
                    for k, v in atoms.info.items()
                    if isinstance(v, (int, float, str, bool, np.integer, np.floating))
                }
            )
            results = {"energy": energy, "forces": forces}
            if stress is not None:
                results["stress"] = stress
            out.calc = SinglePointCalculator(out, **results)
            res.frames.append(out)
        return res


def with_label_keys(frames: list[Atoms], data_cfg: dict[str, Any]) -> list[Atoms]:
    """Frames whose labels sit where the training config reads them (``data.*_key``): calculator
    results by default, else ``info``/``arrays`` under the configured keys."""
    keys = {
        "energy": data_cfg.get("energy_key"),
        "forces": data_cfg.get("forces_key"),
        "stress": data_cfg.get("stress_key"),
    }
    if not any(keys.values()):
        return frames
    out = []
    for a in frames:
        b = a.copy()
        res = a.calc.results
        b.calc = None
        for name, key in keys.items():
            if key and name in res:
                value = np.asarray(res[name])
                if name == "forces":
                    b.arrays[key] = value
                else:
                    b.info[key] = value.ravel() if value.ndim else float(value)
        rest = {k: v for k, v in res.items() if not keys.get(k)}
        if rest:
            b.calc = SinglePointCalculator(b, **rest)
        out.append(b)
    return out
