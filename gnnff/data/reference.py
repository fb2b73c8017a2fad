"""The reference method that labels frames: one spec for ``gnnff data generate``,
``gnnff stabilize`` and ``gnnff eval``.

A reference spec is a mapping with exactly one of:

- ``{preset: NAME}``: a gnnff data preset's classical potential through LAMMPS (exactly as
  ``gnnff data generate`` labels);
- ``{calculator: "package.module:Class", kwargs: {...}}``: any ASE calculator (a DFT code);
- ``{teacher: sevennet-0, device: cpu, threads: N}``: a foundation-model teacher
  (:mod:`gnnff.data.teacher`; needs ``pip install "gnnff[teacher]"``).

On the command line the same is written ``preset:NAME``, ``teacher:NAME`` or
``calculator:package.module:Class``.
"""

from __future__ import annotations

import importlib
from typing import Any

from gnnff.errors import GNNFFError

from .teacher import TeacherError, check_species, provenance, teacher_info


class ReferenceSpecError(GNNFFError, ValueError):
    """A reference spec is malformed, names something that does not exist, or cannot label
    the asked species."""


_KINDS = ("preset", "calculator", "teacher")
_ALLOWED = {
    "preset": {"preset"},
    "calculator": {"calculator", "kwargs"},
    "teacher": {"teacher", "device", "threads"},
}


def resolve_calculator_class(spec: str) -> type:
    """``"package.module:Class"`` -> the class.

    Raises :class:`ReferenceSpecError` unless it is an importable ASE calculator class.
    """
    if not isinstance(spec, str) or ":" not in spec:
        raise ReferenceSpecError(
            "reference.calculator must look like 'package.module:Class' "
            f"(e.g. 'ase.calculators.emt:EMT'), got {spec!r}"
        )
    mod_name, cls_name = spec.split(":", 1)
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ReferenceSpecError(
            f"reference.calculator: cannot import {mod_name!r} ({exc}); "
            "install the package or fix the path"
        ) from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise ReferenceSpecError(f"reference.calculator: {mod_name!r} has no {cls_name!r}")
    from ase.calculators.calculator import BaseCalculator

    if not (isinstance(cls, type) and issubclass(cls, BaseCalculator)):
        raise ReferenceSpecError(
            f"reference.calculator: {spec} is not an ASE calculator class (a subclass of "
            "ase.calculators.calculator.BaseCalculator)"
        )
    return cls


def parse_reference_arg(text: str) -> dict[str, Any]:
    """A command-line reference (``teacher:sevennet-0``, ``preset:sio2-tersoff``,
    ``calculator:ase.calculators.emt:EMT``) -> a spec mapping (not yet validated)."""
    kind, sep, value = str(text).partition(":")
    if not sep or kind not in _KINDS or not value:
        raise ReferenceSpecError(
            f"reference {text!r}: write teacher:NAME (e.g. teacher:sevennet-0), preset:NAME "
            "(e.g. preset:sio2-tersoff) or calculator:package.module:Class"
        )
    return {kind: value}


def validate_reference(ref: Any, species: list[str] | None = None) -> dict[str, Any]:
    """Check a reference spec before anything runs and return it normalised.

    ``species``: the elements the reference must label (a teacher lacking one is refused,
    naming it). Raises :class:`ReferenceSpecError` with the fix in the message.
    """
    kinds = [k for k in _KINDS if isinstance(ref, dict) and k in ref]
    if len(kinds) != 1:
        raise ReferenceSpecError(
            "reference must be {preset: NAME} (a gnnff data preset, e.g. sio2-tersoff), "
            "{calculator: 'package.module:Class', kwargs: {...}} (any ASE calculator) or "
            "{teacher: NAME} (a foundation-model teacher, e.g. sevennet-0)"
        )
    kind = kinds[0]
    extra = set(ref) - _ALLOWED[kind]
    if extra:
        raise ReferenceSpecError(
            f"unknown reference keys {sorted(extra)} for a {kind} reference; allowed: "
            f"{sorted(_ALLOWED[kind])}"
        )
    if kind == "preset":
        from .presets import load_preset

        try:
            preset = load_preset(ref["preset"])
        except (FileNotFoundError, ValueError) as exc:
            raise ReferenceSpecError(f"reference.preset: {exc}") from None
        lacking = sorted(set(species or []) - set(preset["lammps"]["elements"]))
        if lacking:
            raise ReferenceSpecError(
                f"reference.preset {ref['preset']!r} labels {preset['lammps']['elements']}, "
                f"not {lacking}"
            )
        return {"preset": ref["preset"]}
    if kind == "calculator":
        resolve_calculator_class(ref["calculator"])
        kwargs = ref.get("kwargs") or {}
        if not isinstance(kwargs, dict):
            raise ReferenceSpecError("reference.kwargs must be a mapping of keyword arguments")
        return {"calculator": ref["calculator"], "kwargs": kwargs}
    out: dict[str, Any] = {"teacher": str(ref["teacher"]), "device": ref.get("device", "cpu")}
    if out["device"] not in ("cpu", "cuda"):
        raise ReferenceSpecError(f"reference.device must be cpu or cuda, got {out['device']!r}")
    threads = ref.get("threads")
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise ReferenceSpecError(f"reference.threads must be an integer >= 1, got {threads!r}")
    out["threads"] = threads
    try:
        out["teacher"] = teacher_info(out["teacher"]).name
        if species:
            check_species(out["teacher"], list(species))
    except TeacherError as exc:
        raise ReferenceSpecError(f"reference.teacher: {exc}") from None
    return out


def reference_provenance(ref: dict[str, Any]) -> dict[str, Any]:
    """What labelled the data, for manifests and model metadata: the teacher's name, version
    and weights hash; the preset's name; or the calculator's class path."""
    if "teacher" in ref:
        return provenance(ref["teacher"])
    if "preset" in ref:
        return {"preset": ref["preset"]}
    return {"calculator": ref["calculator"]}


def reference_label(provenance: dict[str, Any]) -> str:
    """A short name of what labelled the data (the teacher, preset or calculator) from a
    :func:`reference_provenance` record (or a manifest's ``labels`` entry)."""
    return str(
        provenance.get("teacher") or provenance.get("preset") or provenance.get("calculator")
    )


def reference_id(ref: dict[str, Any]) -> str:
    """A string that changes whenever the labels would: the key of the label cache."""
    import json

    prov = reference_provenance(ref)
    if "calculator" in ref:
        prov = {**prov, "kwargs": ref.get("kwargs") or {}}
    return json.dumps(prov, sort_keys=True, default=str)
