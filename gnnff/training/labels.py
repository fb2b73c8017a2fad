"""Reading reference labels (energy, forces, stress or virial) from ASE frames.

Where the labels live is configurable, as in MACE (``energy_key`` ...) and nequip
(``key_mapping``): by default they are the frame's calculator results (what ASE's extxyz reader
makes of ``energy=``, ``forces``, ``stress=``), or they are read from ``atoms.info`` (energy,
stress, virial) and ``atoms.arrays`` (forces) under the names given in ``data.energy_key``,
``data.forces_key``, ``data.stress_key``, ``data.virial_key``.

Conventions (those of ASE):
- energy: total potential energy of the frame, eV.
- forces: [N,3] eV/A.
- stress: eV/A^3, positive = tensile (ASE sign; ``stress = -virial / volume``), given as a
  3x3 matrix, 9 values (row major) or 6 in Voigt order xx yy zz yz xz xy.
- virial: eV, ``virial = -sum_ij r_ij (x) dE/dr_ij`` (the extxyz/nequip convention), 3x3, 9 or
  6 values; converted to stress as ``-virial / volume``. A frame with both keys uses stress.

A label may be missing from some frames (a non-periodic cluster has no stress, a frame may carry
forces only): that frame then contributes no term for it (``None`` here; the trainer masks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import GNNFFError

# keys users bring from other codes and DFT workflows; used only to name them in error messages
KNOWN_INFO_KEYS = (
    "REF_energy",
    "ref_energy",
    "dft_energy",
    "DFT_energy",
    "energy",
    "Energy",
    "TotEnergy",
    "free_energy",
    "REF_stress",
    "DFT_stress",
    "dft_stress",
    "stress",
    "REF_virial",
    "DFT_virial",
    "dft_virial",
    "virial",
)
KNOWN_ARRAY_KEYS = ("REF_forces", "ref_forces", "dft_forces", "DFT_forces", "forces", "force")
LABEL_KEYS = ("energy_key", "forces_key", "stress_key", "virial_key")


class LabelError(GNNFFError, ValueError):
    """A label that cannot be read or used; the message names the frame, the key and the fix."""


@dataclass(frozen=True)
class LabelKeys:
    """Where each label is read from; ``None`` = the frame's calculator results (virial:
    not read)."""

    energy_key: str | None = None
    forces_key: str | None = None
    stress_key: str | None = None
    virial_key: str | None = None

    @classmethod
    def from_config(cls, data_cfg: dict[str, Any]) -> LabelKeys:
        return cls(**{k: data_cfg.get(k) for k in LABEL_KEYS})

    def describe(self) -> str:
        return ", ".join(f"{k}={getattr(self, k)!r}" for k in LABEL_KEYS)


@dataclass
class FrameLabels:
    """Labels of one frame; ``None`` where the frame has no such label."""

    energy: float | None
    forces: np.ndarray | None  # [N,3] eV/A
    stress: np.ndarray | None  # [3,3] eV/A^3, ASE sign


def _calc_result(atoms, name: str):
    calc = atoms.calc
    if calc is None:
        return None
    results = getattr(calc, "results", {}) or {}
    value = results.get(name)
    return None if value is None else np.asarray(value, dtype=np.float64)


def _to_3x3(value, what: str, where: str) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64).reshape(-1)
    if a.size == 9:
        return a.reshape(3, 3)
    if a.size == 6:  # Voigt: xx yy zz yz xz xy
        xx, yy, zz, yz, xz, xy = a
        return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    raise LabelError(
        f"{where}: {what} has {a.size} values; give 9 (3x3) or 6 (Voigt xx yy zz yz xz xy)"
    )


def present_keys(atoms) -> list[str]:
    """Label-like keys a frame carries: calculator results and ``info``/``arrays`` names."""
    keys = []
    if atoms.calc is not None:
        keys += [f"calculator:{k}" for k in (getattr(atoms.calc, "results", {}) or {})]
    keys += [f"info:{k}" for k in atoms.info]
    keys += [f"arrays:{k}" for k in atoms.arrays if k not in ("numbers", "positions")]
    return keys


def alternative_keys(atoms) -> list[str]:
    """Known label keys of other codes found in ``atoms.info`` / ``atoms.arrays``."""
    found = [f"info:{k}" for k in KNOWN_INFO_KEYS if k in atoms.info]
    found += [f"arrays:{k}" for k in KNOWN_ARRAY_KEYS if k in atoms.arrays]
    return found


def read_labels(atoms, keys: LabelKeys, where: str) -> FrameLabels:
    """The labels of one frame under ``keys``; raises :class:`LabelError` for a label that is
    present but unusable (non-finite, wrong shape), naming ``where`` (file and frame)."""
    n = len(atoms)
    if keys.energy_key is None:
        e = _calc_result(atoms, "energy")
    else:
        e = atoms.info.get(keys.energy_key)
    energy = None
    if e is not None:
        try:
            energy = float(np.asarray(e, dtype=np.float64).reshape(()))
        except (TypeError, ValueError):
            raise LabelError(
                f"{where}: energy {keys.energy_key or 'result'} = {e!r} is not a number"
            ) from None
        if not np.isfinite(energy):
            raise LabelError(f"{where} has a NaN or infinite energy label; fix or drop it")

    f = (
        _calc_result(atoms, "forces")
        if keys.forces_key is None
        else atoms.arrays.get(keys.forces_key)
    )
    forces = None
    if f is not None:
        forces = np.asarray(f, dtype=np.float64)
        if forces.shape != (n, 3):
            raise LabelError(f"{where}: forces have shape {forces.shape}, expected ({n}, 3)")
        if not np.all(np.isfinite(forces)):
            raise LabelError(f"{where} has a NaN or infinite force label; fix or drop it")

    stress = None
    s = (
        _calc_result(atoms, "stress")
        if keys.stress_key is None
        else atoms.info.get(keys.stress_key)
    )
    if s is not None:
        stress = _to_3x3(s, "stress", where)
    elif keys.virial_key is not None and keys.virial_key in atoms.info:
        vir = _to_3x3(atoms.info[keys.virial_key], "virial", where)
        volume = abs(float(np.linalg.det(atoms.get_cell()[:]))) if atoms.pbc.all() else 0.0
        if volume <= 0:
            raise LabelError(
                f"{where}: a virial label needs a periodic cell with non-zero "
                "volume (stress = -virial / volume); drop it for this frame"
            )
        stress = -vir / volume
    if stress is not None and not np.all(np.isfinite(stress)):
        raise LabelError(f"{where} has a NaN or infinite stress/virial label; fix or drop it")
    return FrameLabels(energy=energy, forces=forces, stress=stress)


def check_keys_exist(frames, keys: LabelKeys, path: str) -> None:
    """Raise :class:`LabelError` when a key option names a key that no frame of ``path`` has,
    listing the keys the file does carry."""
    for opt, store in (
        ("energy_key", "info"),
        ("forces_key", "arrays"),
        ("stress_key", "info"),
        ("virial_key", "info"),
    ):
        name = getattr(keys, opt)
        if name is None:
            continue
        if not any(name in getattr(a, store) for a in frames):
            seen: list[str] = []
            for a in frames[:50]:
                seen += [k for k in present_keys(a) if k not in seen]
            raise LabelError(
                f"data.{opt} = {name!r}, but no frame of {path} has {store}[{name!r}]. Keys "
                f"present: {', '.join(seen) or 'none'}. Set data.{opt} to one of them (or null "
                "for the calculator results)"
            )


def missing_labels_message(atoms, keys: LabelKeys, where: str) -> str:
    """The error for a frame without energy and forces: names the keys it does carry."""
    alt = alternative_keys(atoms)
    msg = f"{where} has no energy or force labels under {keys.describe()}"
    if alt:
        opts, names = [], []
        for k in alt:
            store, name = k.split(":", 1)
            opt = (
                "forces_key"
                if store == "arrays"
                else (
                    "stress_key"
                    if "stress" in name
                    else "virial_key"
                    if "virial" in name
                    else "energy_key"
                )
            )
            opts.append(f"data.{opt}: {name}")
            names.append((opt, name))
        train = " ".join(f"--set data.{opt}={name}" for opt, name in names)
        evaluate = " ".join(f"--{opt.replace('_', '-')} {name}" for opt, name in names)
        return (
            f"{msg}, but it carries {', '.join(alt)}: set {'; '.join(opts)} in the training "
            f"config (or `gnnff train CONFIG --out DIR {train}`); with gnnff eval: "
            f"`gnnff eval MODEL DATA {evaluate}`"
        )
    return (
        f"{msg} (the frame carries {', '.join(present_keys(atoms)) or 'no labels at all'}); "
        "write the file with energies and forces (ASE writes them from a "
        "SinglePointCalculator) or name the keys with data.energy_key / data.forces_key"
    )
