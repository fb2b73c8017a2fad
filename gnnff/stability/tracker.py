"""The engine-independent stability tracker: feed it Snapshots, get the report.

Stable time tau = time of the first failed check (the run's length t_run when none failed);
Stability Index S = tau / t_run in [0, 1]. These are this project's own definitions.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from ase.data import atomic_numbers, covalent_radii

from gnnff.stability.config import StabilityConfig
from gnnff.stability.criteria import (
    CheckState,
    Criterion,
    CriterionContext,
    NotApplicable,
    criterion_class,
)
from gnnff.stability.geometry import all_pair_keys, frame_geometry, symbols_of
from gnnff.stability.reference import StabilityReference
from gnnff.stability.report import REPORT_FORMAT, REPORT_VERSION, ReportWriter, build_report
from gnnff.stability.series import CheckSeries
from gnnff.stability.snapshot import Snapshot

__all__ = ["ENSEMBLES", "REPORT_FORMAT", "REPORT_VERSION", "CriterionFactory", "StabilityTracker"]

ENSEMBLES = ("nve", "nvt", "npt")

# builds the criterion NAME for a run (may raise NotApplicable); see StabilityTracker
CriterionFactory = Callable[[str, StabilityConfig, CriterionContext], Criterion]


def build_registered(name: str, config: StabilityConfig, context: CriterionContext) -> Criterion:
    """The registered criterion ``name`` built by its own ``from_config`` (the default
    :data:`CriterionFactory`)."""
    return criterion_class(name).from_config(config, context)


class StabilityTracker:
    """Runs the enabled criteria on each Snapshot and keeps the time series for the report.

    ensemble: "nve" | "nvt" | "npt" (energy conservation is checked for NVE only).
    target_temperature (K): a fixed target given by the user, or None: then each check's
    live thermostat target (``update(..., target_temperature=)``) or, without one, the run's
    own initial temperature (see :class:`~gnnff.stability.criteria.Temperature`).
    total_time_ps: planned run length t_run (ps); None means "the last checked
    time". n_atoms: if given, every snapshot must have that many atoms.
    target_ramp: ``(start, end)`` (K) when the thermostat's target is ramped or changed over
    the run (a heating ramp, a hotter second stage); criteria whose reference is the run's own
    start then say they do not apply (the RDF against its first window).
    criterion_factory: builds each criterion the config names (default: the registered class's
    ``from_config``); an engine that judges some criteria itself passes one that returns
    criteria reading its verdict (the LAMMPS fix: :mod:`gnnff.lammps.fix_verdict`).
    """

    def __init__(
        self,
        config: StabilityConfig | None = None,
        reference: StabilityReference | None = None,
        ensemble: str = "nvt",
        target_temperature: float | None = None,
        total_time_ps: float | None = None,
        n_atoms: int | None = None,
        *,
        criterion_factory: CriterionFactory | None = None,
        target_ramp: tuple[float, float] | None = None,
    ) -> None:
        self.config = config if config is not None else StabilityConfig()
        self.reference = reference
        self._writer = ReportWriter()
        ensemble = str(ensemble).lower()
        if ensemble not in ENSEMBLES:
            raise ValueError(f"ensemble must be one of {', '.join(ENSEMBLES)}, got {ensemble!r}")
        self.ensemble = ensemble
        self.given_target_temperature = (
            None if target_temperature is None else float(target_temperature)
        )
        self.total_time_ps = None if total_time_ps is None else float(total_time_ps)
        self.n_atoms = n_atoms
        self.target_ramp = None if target_ramp is None else (float(target_ramp[0]),
                                                             float(target_ramp[1]))  # fmt: skip
        self.first_failure: dict | None = None
        self.status_override: str | None = None
        self.interrupt_reason: str | None = None
        self.halt: dict | None = None
        self.symbols: list[str] | None = None
        self.n_checks = 0
        self.first_live_target: float | None = None
        self._radius: float | None = None
        self._last: Snapshot | None = None
        self.not_applicable: dict[str, str] = {}
        self.criteria: list[Criterion] = self._build_criteria(criterion_factory or build_registered)
        self._series = CheckSeries()
        self.series: dict[str, Any] = self._series.data

    # -- setup ---------------------------------------------------------------------------
    def _build_criteria(self, factory: CriterionFactory) -> list[Criterion]:
        """Each enabled criterion, built by ``factory`` (NotApplicable: noted with its reason),
        in ``order`` (the first listed wins when several fail at the same step; ties keep the
        config's order)."""
        cfg = self.config
        out: list[Criterion] = []
        for name in cfg.criteria:
            context = CriterionContext(
                reference=self.reference,
                ensemble=self.ensemble,
                target_temperature=self.given_target_temperature,
                options=dict(cfg.criterion_options.get(name, {})),
                target_ramp=self.target_ramp,
            )
            try:
                out.append(factory(name, cfg, context))
            except NotApplicable as exc:
                self.not_applicable[name] = str(exc)
        return sorted(out, key=lambda c: c.order)

    def criterion(self, name: str) -> Criterion | None:
        """The enabled criterion ``name`` of this run, or None."""
        return next((c for c in self.criteria if c.name == name), None)

    def _search_radius(self, symbols: list[str]) -> float:
        if self.config.distance_radius is not None:
            return float(self.config.distance_radius)
        ref_min = self.reference.pair_min_distances if self.reference else {}
        base = 0.0
        for key in all_pair_keys(symbols):
            if key in ref_min:
                base = max(base, ref_min[key])
            else:
                a, b = key.split("-")
                base = max(
                    base, covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]]
                )
        return max(3.0, 1.25 * base)

    # -- checking ------------------------------------------------------------------------
    @property
    def failed(self) -> bool:
        return self.first_failure is not None

    def _geometry_fn(self, snap: Snapshot):
        if (
            snap.n_atoms == 0
            or snap.positions is None
            or not np.all(np.isfinite(snap.positions))
            or not np.all(np.isfinite(snap.cell))
        ):
            return None
        rdf = self.criterion("rdf")

        def compute():
            return frame_geometry(
                snap.numbers,
                snap.positions,
                snap.cell,
                snap.pbc,
                self._radius,
                rdf.rmax if rdf is not None else None,
                rdf.nbins if rdf is not None else 0,
            )

        return compute

    def update(
        self,
        snap: Snapshot,
        *,
        target_temperature: float | None = None,
        run_start: bool = False,
    ) -> bool:
        """Check one frame. Returns True while every check so far has passed.

        ``target_temperature``: the thermostat's target at this check (K), read live from the
        engine (None without a thermostat); ``run_start``: this frame is a run's first (its
        setup: the configuration or velocities may have been changed since the last check)."""
        if self.n_atoms is None:
            self.n_atoms = snap.n_atoms
        elif snap.n_atoms != self.n_atoms:
            raise ValueError(
                f"snapshot at step {snap.step} has {snap.n_atoms} atoms, the run has "
                f"{self.n_atoms}: atoms were lost or added; record this as a failure with "
                "record_failure('lost_atoms', ...) instead of passing the frame"
            )
        if self.symbols is None:
            self.symbols = symbols_of(snap.numbers)
            self._radius = self._search_radius(self.symbols)
            self._series.add_pairs(all_pair_keys(self.symbols))
        geometry_fn = self._geometry_fn(snap)
        if target_temperature is not None and not (
            math.isfinite(target_temperature) and target_temperature > 0
        ):
            target_temperature = None
        if self.first_live_target is None and target_temperature is not None:
            self.first_live_target = float(target_temperature)
        state = CheckState(
            snapshot=snap,
            symbols=self.symbols,
            geometry_fn=geometry_fn,
            target_temperature=target_temperature,
            run_start=run_start or self.n_checks == 0,
        )
        failed_now: list[dict] = []
        values: dict[str, float | None] = {}
        for crit in self.criteria:
            ok, value = crit.check(snap, state)
            values[crit.name] = value
            if not ok:
                entry = {"criterion": crit.name, "value": value}
                entry.update(crit.failure_detail())
                failed_now.append(entry)
        self._record(snap, state if geometry_fn is not None else None, values)
        self.n_checks += 1
        self._last = snap
        if failed_now and self.first_failure is None:
            first = dict(failed_now[0])
            first.update(step=snap.step, time_ps=snap.time_ps)
            first["also_failed"] = [f["criterion"] for f in failed_now[1:]]
            self.first_failure = first
        return not self.failed

    def record_failure(
        self,
        criterion: str,
        step: int,
        time_ps: float,
        value: float | None = None,
        threshold: float | None = None,
        **detail: Any,
    ) -> None:
        """Record a failure detected outside the criteria (e.g. an engine error such as
        LAMMPS 'lost atoms'); ignored if an earlier failure is already recorded."""
        if self.first_failure is None:
            self.first_failure = {
                "criterion": str(criterion),
                "value": value,
                "threshold": threshold,
                "step": int(step),
                "time_ps": float(time_ps),
                "also_failed": [],
                **detail,
            }

    def mark_halted(self, step: int, time_ps: float, reason: str) -> None:
        """The engine ended the run early for a reason that is not one of these checks (e.g. a
        LAMMPS ``fix halt``): status "halted", t_run is what actually ran (set
        ``total_time_ps`` accordingly) and, without a failure, S = 1."""
        if self.status_override is None:
            self.status_override = "halted"
            self.halt = {"step": int(step), "time_ps": float(time_ps), "reason": reason}

    def mark_interrupted(self, reason: str = "interrupted") -> None:
        """The run stopped early for a reason that is not a stability failure (e.g. Ctrl-C):
        S is then a lower bound, from the last checked time."""
        self.status_override = "interrupted"
        self.interrupt_reason = reason

    def _record(self, snap: Snapshot, state: CheckState | None, values: dict) -> None:
        temp_crit = self.criterion("temperature")
        pair_min = state.geometry.pair_min if state is not None and state.geometry else {}
        self._series.append(snap, values, pair_min, getattr(temp_crit, "target", None),
                            getattr(temp_crit, "t_max", None))  # fmt: skip

    # -- results -------------------------------------------------------------------------
    @property
    def target_temperature(self) -> float | None:
        """The run's target (K) for the report: the given one, else the first live thermostat
        target seen (each check's own is in ``series["target_temperature"]``)."""
        if self.given_target_temperature is not None:
            return self.given_target_temperature
        return self.first_live_target

    @property
    def last_snapshot(self) -> Snapshot | None:
        """The last checked snapshot (None before the first check)."""
        return self._last

    @property
    def last_time_ps(self) -> float:
        return self._last.time_ps if self._last is not None else 0.0

    @property
    def t_run_ps(self) -> float:
        return self.total_time_ps if self.total_time_ps is not None else self.last_time_ps

    @property
    def status(self) -> str:
        if self.failed:
            return "failed"
        return self.status_override or "completed"

    @property
    def stable_time_ps(self) -> float:
        if self.failed:
            return float(self.first_failure["time_ps"])
        if self.status_override == "interrupted":
            return self.last_time_ps
        return self.t_run_ps

    @property
    def stability_index(self) -> float:
        t_run = self.t_run_ps
        if t_run <= 0:
            return 0.0 if self.failed else 1.0
        return float(min(1.0, max(0.0, self.stable_time_ps / t_run)))

    def criteria_info(self) -> list[dict]:
        info = [{"name": c.name, "applicable": True, **c.thresholds()} for c in self.criteria]
        info += [
            {"name": n, "applicable": False, "reason": r} for n, r in self.not_applicable.items()
        ]
        return info

    def report(self) -> dict:
        """The report as a JSON-ready dict (see the module docstring for tau and S; format:
        :mod:`gnnff.stability.report`)."""
        return build_report(self)

    def write(self, out_dir: str | os.PathLike) -> dict:
        """Write ``report.json`` and ``report.png`` into ``out_dir`` (atomically); returns the
        report. A plotting error is reported as a warning and does not lose the JSON."""
        rep = self.report()
        self._writer.write(rep, out_dir)
        return rep
