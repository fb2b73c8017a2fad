"""The stand-in teacher shared by the teacher and bootstrap tests: ASE's Lennard-Jones registered
as the teacher ``standin`` (Si and O only) through ``gnnff.data.teacher.TEACHERS``, so that the
teacher path runs without ``sevenn``. The ``standin`` fixture (tests/conftest.py) calls
:func:`register_standin`."""

from __future__ import annotations

from pathlib import Path

from ase.calculators.lj import LennardJones

from gnnff.data import teacher as teacher_mod
from gnnff.data.teacher import TeacherInfo


def lj() -> LennardJones:
    """The stand-in's physics, for direct comparisons."""
    return LennardJones(sigma=2.2, epsilon=0.02, rc=5.0, smooth=True)


def register_standin(monkeypatch, tmp_path: Path) -> dict:
    """Registers the stand-in teacher ``standin``; returns its call counter ``{"n": calls}``.
    Setting ``counter["interrupt_at"] = N`` raises KeyboardInterrupt (a Ctrl-C) when call N + 1
    starts."""
    weights = tmp_path / "standin_weights.bin"
    weights.write_bytes(b"stand-in teacher weights")
    calls = {"n": 0, "interrupt_at": None}

    class Counting(LennardJones):
        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            if calls["interrupt_at"] is not None and calls["n"] >= calls["interrupt_at"]:
                raise KeyboardInterrupt
            calls["n"] += 1
            self.nl = None  # stateless: ASE's kept neighbour list orders sums by call history
            super().calculate(atoms, properties, system_changes)

    info = TeacherInfo(
        name="standin",
        package="ase",
        description="Lennard-Jones stand-in",
        weights_path=lambda: weights,
        species=lambda: ["O", "Si"],
        build=lambda device: Counting(sigma=2.2, epsilon=0.02, rc=5.0, smooth=True),
    )
    monkeypatch.setitem(teacher_mod.TEACHERS, "standin", info)
    return calls


def rattled_quartz(frames: int) -> dict:
    """A preset system: one alpha-quartz cell (9 atoms) from ``sio2-tersoff``, rattled (no MD)
    at 300 and 900 K, ``frames`` frames each, all in the ID pool."""
    from gnnff.data.presets import load_preset

    src = load_preset("sio2-tersoff")
    quartz = next(s for s in src["systems"] if s["name"] == "alpha-quartz")
    return {
        **{k: quartz[k] for k in ("name", "kind", "crystal")},
        "sampler": "rattle",
        "rattle": {"sigma_300K": {"Si": 0.04, "O": 0.06}, "strain": 0.01},
        "repeat": [1, 1, 1],
        "density_factors": [1.0],
        "temperatures": [300, 900],
        "frames": frames,
        "split": "id",
    }
