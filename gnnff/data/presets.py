"""Reference-data presets: YAML files that say which classical potential labels which systems.

A preset is data, not code: ``gnnff/data/presets/<name>.yaml`` or any YAML path with the same
schema (see ``sio2-tersoff.yaml``, commented). Add a preset by copying that file.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from ..errors import GNNFFError, did_you_mean
from ..io_utils import load_yaml

PRESET_DIR = Path(__file__).parent / "presets"

_TOP_KEYS = {
    "name",
    "description",
    "lammps",
    "timestep_fs",
    "thermostat_damp_fs",
    "frame_spacing_fs",
    "equilibration_fs",
    "min_distance",
    "melt",
    "id_split",
    "systems",
    "reference_md",
    "quick",
    "labels",
}
_SYSTEM_KEYS = {
    "name",
    "kind",
    "composition",
    "n_atoms",
    "density",
    "density_factors",
    "temperatures",
    "frames",
    "split",
    "crystal",
    "repeat",
    "sampler",
    "rattle",
}
SAMPLERS = ("md", "rattle")
_QUICK_KEYS = {
    "frames",
    "density_factors",
    "temperatures",
    "n_atoms",
    "equilibration_fs",
    "melt",
    "reference_md",
}


class PresetError(GNNFFError, ValueError):
    """A preset is unknown or malformed."""


def list_presets() -> list[str]:
    """Names of the bundled presets."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _check_keys(d: dict, allowed: set[str], where: str) -> None:
    for key in d:
        if key not in allowed:
            raise PresetError(f"{where}: unknown key {key!r}{did_you_mean(key, sorted(allowed))}")


def _check_sampler(sysd: dict, where: str) -> None:
    """``sampler: md`` (reference MD, default) or ``rattle`` (crystals only: thermal
    displacements and strains of the ideal cell, no MD; needs ``rattle.sigma_300K``)."""
    sampler = sysd.get("sampler", "md")
    name = sysd.get("name", "?")
    if sampler not in SAMPLERS:
        raise PresetError(
            f"{where}: system {name}: sampler {sampler!r} is not available; choose one of "
            f"{', '.join(SAMPLERS)}"
        )
    if sampler != "rattle":
        return
    if sysd.get("kind") != "crystal":
        raise PresetError(f"{where}: system {name}: sampler rattle needs kind: crystal")
    sigma = (sysd.get("rattle") or {}).get("sigma_300K")
    if not isinstance(sigma, dict) or set(sigma) != set(sysd["crystal"]["symbols"]):
        raise PresetError(
            f"{where}: system {name}: rattle.sigma_300K must give the RMS displacement (A) at "
            f"300 K of each element of the crystal, {sysd['crystal']['symbols']}"
        )


def load_preset(name_or_path: str, quick: bool = False) -> dict[str, Any]:
    """Load and validate a preset by bundled name or YAML path; ``quick`` applies its
    ``quick`` block (fewer, smaller state points)."""
    path = Path(name_or_path)
    if not path.is_file():
        path = PRESET_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        raise PresetError(
            f"unknown preset {name_or_path!r}; bundled presets: {', '.join(list_presets())} "
            "(or give the path of a preset YAML file)"
        )
    preset = load_yaml(path)
    if not isinstance(preset, dict):
        raise PresetError(f"{path}: a preset must be a YAML mapping")
    _check_keys(preset, _TOP_KEYS, str(path))
    for key in ("name", "lammps", "systems"):
        if key not in preset:
            raise PresetError(f"{path}: missing required key {key!r}")
    elements = preset["lammps"].get("elements")
    if not elements:
        raise PresetError(f"{path}: lammps.elements (LAMMPS type order) is required")
    names = set()
    for sysd in preset["systems"]:
        _check_keys(sysd, _SYSTEM_KEYS, f"{path}: system {sysd.get('name', '?')}")
        if sysd.get("kind") not in ("amorphous", "crystal"):
            raise PresetError(f"{path}: system {sysd.get('name')}: kind must be amorphous|crystal")
        _check_sampler(sysd, str(path))
        syms = (
            sysd.get("composition", {})
            if sysd["kind"] == "amorphous"
            else {s: 1 for s in sysd["crystal"]["symbols"]}
        )
        missing = set(syms) - set(elements)
        if missing:
            raise PresetError(
                f"{path}: system {sysd['name']} uses {sorted(missing)} not in lammps.elements"
            )
        names.add(sysd["name"])
    for ref in preset.get("reference_md", {}).get("systems", []):
        if ref not in names:
            raise PresetError(f"{path}: reference_md system {ref!r} is not among the systems")
    preset = copy.deepcopy(preset)
    preset["_source"] = str(path.resolve())
    if quick:
        preset = _apply_quick(preset)
    return preset


def _apply_quick(preset: dict) -> dict:
    q = preset.get("quick") or {}
    _check_keys(q, _QUICK_KEYS, "quick")
    for key in ("equilibration_fs", "melt"):
        if key in q:
            preset[key] = q[key]
    if "reference_md" in q and "reference_md" in preset:
        preset["reference_md"].update(q["reference_md"])
    for sysd in preset["systems"]:
        sysd["frames"] = q.get("frames", sysd.get("frames"))
        if "density_factors" in q:
            sysd["density_factors"] = q["density_factors"]
        if "temperatures" in q:
            sysd["temperatures"] = q["temperatures"]
        if "n_atoms" in q and sysd["kind"] == "amorphous":
            sysd["n_atoms"] = [q["n_atoms"]]
    preset["quick_mode"] = True
    return preset
