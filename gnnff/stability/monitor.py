"""The ASE side: an observer that checks stability during ``dyn.run``.

Usage::

    monitor = StabilityMonitor(atoms, dyn, config=cfg, reference=ref, total_steps=20000,
                               out_dir="run/stability")
    report = run_monitored(dyn, 20000, monitor)      # attaches the monitor, runs, writes

Stopping mechanism: when a check fails and ``stop_on_failure`` is on, the monitor sets
``dyn.max_steps = dyn.nsteps``. ASE's MD loop (``while self.nsteps < self.max_steps``) then
ends cleanly after the current step's observers, and ``dyn.run`` returns normally. A dynamics
object without ``max_steps`` gets a ``StabilityStop`` exception instead, which
``run_monitored`` catches. Either way the report is written at once (if ``out_dir`` is set),
again when ``run_monitored`` ends, and also when the run is interrupted (KeyboardInterrupt or
any other exception): then the report's status is "interrupted" and the exception propagates.
No extra force evaluation is done: energies and forces come from ``atoms.calc.results``.
At the first failure (with ``out_dir``) the failing frame and the last 5 checked frames before
it are written to ``failing.extxyz`` (fields: :mod:`gnnff.stability.failing`).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ase import units

from gnnff.stability.config import StabilityConfig
from gnnff.stability.failing import (
    DEFAULT_KEEP,
    FAILING_FILE,
    offending_atoms,
    write_failing_frames,
)
from gnnff.stability.reference import StabilityReference
from gnnff.stability.snapshot import Snapshot, ase_time_to_ps
from gnnff.stability.tracker import StabilityTracker


class StabilityStop(Exception):
    """Raised by the monitor to stop a dynamics object that has no ``max_steps``."""


def guess_ensemble(dynamics: Any) -> str:
    """ "nve" for VelocityVerlet, "npt" for barostatted integrators, else "nvt"."""
    name = type(dynamics).__name__.lower()
    if "verlet" in name:
        return "nve"
    if "npt" in name or "mtk" in name or "inhomogeneous" in name or "melchionna" in name:
        return "npt"
    return "nvt"


def guess_target_temperature(dynamics: Any) -> float | None:
    """The thermostat's current target temperature (K) where the ASE integrator exposes it
    (Langevin, Bussi, Andersen, Berendsen: ``temp`` or ``temperature_K``; Nose-Hoover chain:
    its thermostat's k_B T), else None. Read at every check, so a changed target is seen."""
    for attr in ("temp", "temperature"):
        value = getattr(dynamics, attr, None)
        if isinstance(value, (int, float)) and value > 0:
            return float(value) / units.kB  # ASE thermostats store k_B T in eV
    for attr in ("temperature_K", "_temperature_K"):
        value = getattr(dynamics, attr, None)
        if isinstance(value, (int, float)) and value > 0:
            return float(value)
    kt = getattr(getattr(dynamics, "_thermostat", None), "_kT", None)  # NoseHooverChainNVT
    if isinstance(kt, (int, float)) and kt > 0:
        return float(kt) / units.kB
    return None


class StabilityMonitor:
    """ASE observer: ``dyn.attach(monitor, interval=config.interval)`` (or ``monitor.attach()``).

    Give either a ready ``tracker`` or ``config``/``reference`` (plus optional ``ensemble``
    and ``total_steps``; guessed from the dynamics where left out).

    ``target_temperature``: a number (K) is a fixed target for the temperature criterion; a
    callable ``() -> float | None`` is asked at every check (a ramp the caller drives); None
    (default) reads the thermostat's current target from the dynamics at every check
    (:func:`guess_target_temperature`), and without a thermostat the run's own initial
    temperature is the target. Call :meth:`new_run` before running the same dynamics again
    after changing it (its first check then starts a new run for that rule).
    """

    def __init__(
        self,
        atoms: Any,
        dynamics: Any,
        tracker: StabilityTracker | None = None,
        *,
        config: StabilityConfig | None = None,
        reference: StabilityReference | None = None,
        ensemble: str | None = None,
        target_temperature: float | Callable[[], float | None] | None = None,
        total_steps: int | None = None,
        out_dir: str | os.PathLike[str] | None = None,
        stop_on_failure: bool | None = None,
        keep_frames: int | None = None,
    ) -> None:
        self.atoms = atoms
        self.dynamics = dynamics
        self.dt_ps = ase_time_to_ps(dynamics.dt)
        self.live_target: Callable[[], float | None]
        if callable(target_temperature):
            self.live_target, fixed = target_temperature, None
        else:
            self.live_target = lambda: guess_target_temperature(dynamics)
            fixed = None if target_temperature is None else float(target_temperature)
        if tracker is None:
            if ensemble is None:
                ensemble = guess_ensemble(dynamics)
            total = None if total_steps is None else total_steps * self.dt_ps
            tracker = StabilityTracker(
                config, reference, ensemble, fixed, total, n_atoms=len(atoms)
            )
        if tracker.first_live_target is None:
            tracker.first_live_target = self.live_target()  # reported before the first check
        self.tracker = tracker
        self._run_start = True
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.stop_on_failure = (
            tracker.config.stop_on_failure if stop_on_failure is None else bool(stop_on_failure)
        )
        self.stopped = False
        self.attached = False
        self.keep_frames = DEFAULT_KEEP if keep_frames is None else int(keep_frames)
        if self.keep_frames < 0:
            raise ValueError(f"keep_frames must be >= 0, got {keep_frames}")
        self._recent: deque[Snapshot] = deque(maxlen=self.keep_frames + 1)

    def attach(self, interval: int | None = None) -> StabilityMonitor:
        """Attach to the dynamics (every ``config.interval`` steps unless given)."""
        if not self.attached:
            self.dynamics.attach(self, interval=interval or self.tracker.config.interval)
            self.attached = True
        return self

    def __call__(self) -> None:
        dyn = self.dynamics
        step = int(dyn.nsteps)
        snap = Snapshot.from_atoms(self.atoms, step=step, time_ps=step * self.dt_ps)
        was_failed = self.tracker.failed
        live = self.live_target()
        ok = self.tracker.update(snap, target_temperature=live, run_start=self._run_start)
        self._run_start = False
        if not was_failed:
            self._recent.append(snap)
        if ok or self.stopped:
            return
        if self.out_dir is not None:
            if not was_failed:  # the failing frame and the checked frames before it
                ff = self.tracker.first_failure or {}
                if not ff.get("atom_indices"):
                    idx = offending_atoms(snap.numbers, snap.positions, snap.cell, snap.pbc, ff)
                    if idx:
                        ff["atom_indices"] = idx
                write_failing_frames(
                    self.out_dir / FAILING_FILE, list(self._recent), ff, source="gnnff md (ASE)"
                )
            self.tracker.write(self.out_dir)
        if self.stop_on_failure:
            self.stopped = True
            if hasattr(dyn, "max_steps"):
                dyn.max_steps = dyn.nsteps
            else:
                raise StabilityStop(self.tracker.first_failure)

    def new_run(self, check: bool = True) -> bool:
        """Start a new run of the same dynamics (after changing its thermostat, velocities or
        configuration): with ``check``, the current configuration is checked at once, as
        LAMMPS checks every run's setup (its energy and forces are computed if the
        calculator holds none for it). The run's first check is its own (NVE: its initial
        temperature is its target). Returns True while every check so far has passed.

        After a failure with ``stop_on_failure`` (``stopped``), the run must not start, as
        ``fix gnnff/stability`` ends a LAMMPS run at a failed setup check and skips later
        runs: :func:`run_monitored` then runs no step (ASE's ``dyn.run`` resets
        ``max_steps``, so a caller running the dynamics itself must check the result)."""
        self._run_start = True
        if check:
            self.atoms.get_potential_energy()
            self.atoms.get_forces()
            self()
        return not self.tracker.failed

    def write(self) -> dict[str, Any]:
        """Write the report now (to ``out_dir`` if set) and return it."""
        if self.out_dir is not None:
            return self.tracker.write(self.out_dir)
        return self.tracker.report()


def run_monitored(dynamics: Any, steps: int, monitor: StabilityMonitor) -> dict[str, Any]:
    """Run ``dynamics`` for ``steps`` MD steps under ``monitor``; returns the report.

    Attaches the monitor if needed, sets the planned run length if the tracker has none, stops
    early on failure (see the module docstring; a failed setup check of a continued dynamics,
    or a failure of an earlier run, means no step is run, as in LAMMPS) and writes the report
    on every exit path.
    """
    monitor.attach()
    # ASE calls observers at step 0 only; a continued dynamics gets its setup checked here
    monitor.new_run(check=int(getattr(dynamics, "nsteps", 0)) > 0)
    tracker = monitor.tracker
    if tracker.total_time_ps is None:
        tracker.total_time_ps = (int(dynamics.nsteps) + int(steps)) * monitor.dt_ps
    if monitor.stopped:  # a failed setup check, or an earlier failure: no step is run
        return monitor.write()
    try:
        dynamics.run(steps)
    except StabilityStop:
        pass
    except KeyboardInterrupt:
        tracker.mark_interrupted("KeyboardInterrupt")
        monitor.write()
        raise
    except Exception as exc:
        tracker.mark_interrupted(f"{type(exc).__name__}: {exc}")
        monitor.write()
        raise
    return monitor.write()
