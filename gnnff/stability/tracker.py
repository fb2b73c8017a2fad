"""The engine-independent stability tracker: feed it Snapshots, get the report.

Stable time tau = time of the first failed check (the run's length t_run when none failed);
Stability Index S = tau / t_run in [0, 1]. These are this project's own definitions.
"""

from __future__ import annotations

import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from ase.data import atomic_numbers, covalent_radii

from gnnff import __version__
from gnnff.errors import MissingExtraError
from gnnff.io_utils import atomic_write, atomic_write_json
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
from gnnff.stability.snapshot import Snapshot

REPORT_FORMAT = "gnnff-stability-report"
REPORT_VERSION = 1
ENSEMBLES = ("nve", "nvt", "npt")


def _clean(x: Any) -> Any:
    """JSON-safe copy: numpy -> Python, NaN/inf -> None."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return [_clean(v) for v in x.tolist()]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


class StabilityTracker:
    """Runs the enabled criteria on each Snapshot and keeps the time series for the report.

    ensemble: "nve" | "nvt" | "npt" (energy conservation is checked for NVE only).
    target_temperature (K): a fixed target given by the user, or None: then each check's
    live thermostat target (``update(..., target_temperature=)``) or, without one, the run's
    own initial temperature (see :class:`~gnnff.stability.criteria.Temperature`).
    total_time_ps: planned run length t_run (ps); None means "the last checked
    time". n_atoms: if given, every snapshot must have that many atoms.
    """

    def __init__(
        self,
        config: StabilityConfig | None = None,
        reference: StabilityReference | None = None,
        ensemble: str = "nvt",
        target_temperature: float | None = None,
        total_time_ps: float | None = None,
        n_atoms: int | None = None,
    ) -> None:
        self.config = config if config is not None else StabilityConfig()
        self.reference = reference
        self._plots_note_shown = False  # a missing `plots` extra is noted once per run
        ensemble = str(ensemble).lower()
        if ensemble not in ENSEMBLES:
            raise ValueError(f"ensemble must be one of {', '.join(ENSEMBLES)}, got {ensemble!r}")
        self.ensemble = ensemble
        self.given_target_temperature = (
            None if target_temperature is None else float(target_temperature)
        )
        self.total_time_ps = None if total_time_ps is None else float(total_time_ps)
        self.n_atoms = n_atoms
        self.first_failure: dict | None = None
        self.status_override: str | None = None
        self.interrupt_reason: str | None = None
        self.halt: dict | None = None
        self.symbols: list[str] | None = None
        self.n_checks = 0
        self.first_live_target: float | None = None
        self._radius: float | None = None
        self._last: Snapshot | None = None
        self._e0: float | None = None
        self.not_applicable: dict[str, str] = {}
        self.criteria: list[Criterion] = self._build_criteria()
        self.series: dict[str, Any] = {
            k: []
            for k in (
                "step",
                "time_ps",
                "temperature",
                "epot",
                "ekin",
                "etot",
                "energy_drift_per_atom",
                "max_force",
                "rdf_error",
                "n_nonfinite",
                "engine_min_distance",
                "target_temperature",
                "t_max",
            )
        }
        self.series["min_distance"] = {}

    # -- setup ---------------------------------------------------------------------------
    def _build_criteria(self) -> list[Criterion]:
        """Each enabled registered criterion, built by its ``from_config``, in ``order`` (the
        first listed wins when several fail at the same step; ties keep the config's order)."""
        cfg = self.config
        out: list[Criterion] = []
        for name in cfg.criteria:
            context = CriterionContext(
                reference=self.reference,
                ensemble=self.ensemble,
                target_temperature=self.given_target_temperature,
                options=dict(cfg.criterion_options.get(name, {})),
            )
            try:
                out.append(criterion_class(name).from_config(cfg, context))
            except NotApplicable as exc:
                self.not_applicable[name] = str(exc)
        return sorted(out, key=lambda c: c.order)

    def _criterion(self, name: str) -> Criterion | None:
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
        rdf = self._criterion("rdf")

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
            for key in all_pair_keys(self.symbols):
                self.series["min_distance"].setdefault(key, [])
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
        s = self.series
        s["step"].append(snap.step)
        s["time_ps"].append(snap.time_ps)
        s["temperature"].append(snap.temperature_value())
        s["epot"].append(snap.potential_energy)
        s["ekin"].append(snap.kinetic_energy)
        s["etot"].append(snap.total_energy)
        drift = None
        if snap.total_energy is not None and snap.n_atoms:
            if self._e0 is None and math.isfinite(snap.total_energy):
                self._e0 = snap.total_energy
            if self._e0 is not None:
                drift = (snap.total_energy - self._e0) / snap.n_atoms
        s["energy_drift_per_atom"].append(drift)
        s["max_force"].append(snap.force_max())
        s["rdf_error"].append(values.get("rdf"))
        s["n_nonfinite"].append(values.get("finite"))
        s["engine_min_distance"].append(snap.min_distance)
        temp_crit = self._criterion("temperature")
        s["target_temperature"].append(getattr(temp_crit, "target", None))
        s["t_max"].append(getattr(temp_crit, "t_max", None))
        pair_min = state.geometry.pair_min if state is not None and state.geometry else {}
        n_before = len(s["step"]) - 1
        for key in pair_min:
            s["min_distance"].setdefault(key, [None] * n_before)
        for key, series in s["min_distance"].items():
            series.append(pair_min.get(key))

    # -- results -------------------------------------------------------------------------
    @property
    def target_temperature(self) -> float | None:
        """The run's target (K) for the report: the given one, else the first live thermostat
        target seen (each check's own is in ``series["target_temperature"]``)."""
        if self.given_target_temperature is not None:
            return self.given_target_temperature
        return self.first_live_target

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
        """The report as a JSON-ready dict (see the module docstring for tau and S)."""
        ff = self.first_failure
        rdf = self._criterion("rdf")
        rdf_info = None
        if rdf is not None:
            edges = np.linspace(0.0, rdf.rmax, rdf.nbins + 1)
            rdf_info = {
                "r": 0.5 * (edges[1:] + edges[:-1]),
                "g_ref": rdf.ref_total,
                "g_last_window": rdf.last_window_total,
            }
        ref = self.reference
        rep = {
            "format": REPORT_FORMAT,
            "format_version": REPORT_VERSION,
            "gnnff_version": __version__,
            "definition": "tau = time of the first failed check (t_run if none); "
            "S = tau / t_run (gnnff's own Stability Index)",
            "status": self.status,
            "stable_time_ps": self.stable_time_ps,
            "stability_index": self.stability_index,
            "t_run_ps": self.t_run_ps,
            "failed_criterion": ff["criterion"] if ff else None,
            "failed_step": ff["step"] if ff else None,
            "failed_time_ps": ff["time_ps"] if ff else None,
            "failure": ff,
            "interrupt_reason": self.interrupt_reason,
            "halt": self.halt,
            "n_atoms": self.n_atoms,
            "species": self.symbols,
            "ensemble": self.ensemble,
            "target_temperature": self.target_temperature,
            "n_checks": self.n_checks,
            "last_step": self._last.step if self._last else None,
            "last_time_ps": self.last_time_ps,
            "criteria": self.criteria_info(),
            "config": self.config.to_dict(),
            "reference": None
            if ref is None
            else {
                "source": ref.source,
                "n_frames": ref.n_frames,
                "pair_min_distances": ref.pair_min_distances,
                "has_rdf": ref.has_rdf,
            },
            "series": self.series,
            "rdf": rdf_info,
        }
        return _clean(rep)

    def write(self, out_dir: str | os.PathLike) -> dict:
        """Write ``report.json`` and ``report.png`` into ``out_dir`` (atomically); returns the
        report. A plotting error is reported as a warning and does not lose the JSON."""
        out = Path(out_dir)
        rep = self.report()
        atomic_write_json(out / "report.json", rep)
        try:
            from gnnff.stability.plot import plot_report

            atomic_write(out / "report.png", lambda p: plot_report(rep, p))
        except MissingExtraError as exc:  # plots are an extra: say so once per run, briefly
            if not self._plots_note_shown:
                print(f"note: report.png skipped: {exc}", file=sys.stderr)
                self._plots_note_shown = True
        except Exception as exc:  # the JSON is the record; the figure is a convenience
            warnings.warn(f"could not draw {out / 'report.png'}: {exc}", stacklevel=2)
        return rep
