"""The verdict of ``fix gnnff/stability``, read from its records.

In a LAMMPS run the fix is the one judge of the criteria it checks natively: it measures,
decides and stops the run at the first failure. ``gnnff lammps run`` does not judge them a
second time: :class:`FixVerdict` hands the :class:`~gnnff.stability.tracker.StabilityTracker`
what the fix recorded at each check (the value, and the failure with its threshold), and the
tracker builds the same report, S and verdict line as for ASE runs.

Which criteria a LAMMPS run can use (:func:`check_lammps_criteria`, before the run starts):

- :data:`NATIVE_CRITERIA`: judged by the fix at every check; a failure stops the run;
- :data:`FRAME_CRITERIA` (``rdf``): measured on the configurations the fix records
  (``frames.bin``) and judged once, after the run; it cannot stop the run, but its failure
  time, and so S, are exact;
- any other criterion (a plug-in registered in :data:`gnnff.extensions.CRITERIA`) is refused:
  LAMMPS cannot call Python code at its checks, so it could never stop the run.

Record fields read here (written by gnnff/lammps/fix_gnnff_stability*.cpp): ``start``:
``criteria`` (the criteria the fix judges), ``not_applicable`` ({name: reason}) and
``settings`` (tmax, tmin, tfactor, target, factor, fallback, drift, fmax); ``thresholds``:
``factor``, ``pair_min_distance``, ``pair_source``; ``check``: ``values`` ({criterion: the
measured value or null}), ``failed`` ([{criterion, value, threshold, pair?, ids?}]), ``t_max``,
``target_temperature``, ``target_source`` and ``e0``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gnnff.errors import UsageError
from gnnff.stability.config import StabilityConfig, StabilityConfigError
from gnnff.stability.criteria import (
    CheckState,
    Criterion,
    CriterionContext,
    NotApplicable,
    criterion_class,
)
from gnnff.stability.snapshot import Snapshot
from gnnff.stability.tracker import CriterionFactory, build_registered

NATIVE_CRITERIA = ("finite", "temperature", "close_contact", "energy_conservation")
FRAME_CRITERIA = ("rdf",)
SOURCE = "fix gnnff/stability"


def check_lammps_criteria(config: StabilityConfig) -> None:
    """Raise :class:`StabilityConfigError` when ``config`` enables a criterion that a LAMMPS
    run cannot judge (anything but :data:`NATIVE_CRITERIA` and :data:`FRAME_CRITERIA`), naming
    it, who registered it, why and what to do instead."""
    refused = [n for n in config.criteria if n not in NATIVE_CRITERIA + FRAME_CRITERIA]
    if not refused:
        return
    from gnnff.extensions import CRITERIA

    names = ", ".join(f"{n!r} (registered by {CRITERIA.origin(n)})" for n in refused)
    raise StabilityConfigError(
        f"stability criterion {names} cannot judge a LAMMPS run: fix gnnff/stability judges "
        f"only the built-in criteria ({', '.join(NATIVE_CRITERIA)} natively, rdf from the "
        "recorded frames), and LAMMPS cannot call a plug-in criterion at its checks, so it "
        "could never stop the run. Run this model under ASE to use it (`gnnff md`, or "
        "explore.engine ase for gnnff stabilize), or remove it from 'criteria' to run in "
        "LAMMPS with the built-in criteria"
    )


@dataclass
class FixRecords:
    """The records a replay is at: the first run's ``start`` record, the ``thresholds``
    record (close-contact thresholds, once) and the current ``check`` record."""

    start: dict[str, Any]
    thresholds: dict[str, Any] = field(default_factory=dict)
    check: dict[str, Any] = field(default_factory=dict)


class FixVerdict(Criterion):
    """One criterion as ``fix gnnff/stability`` judged it: ``check`` returns the fix's
    verdict and value of the current check record (it judges nothing itself).

    ``target`` and ``t_max`` (K) follow the temperature bound the fix used at the last check
    (the tracker's series read them, as from :class:`~gnnff.stability.criteria.Temperature`)."""

    def __init__(self, name: str, order: float, records: FixRecords) -> None:
        self.name = name
        self.order = order
        self._records = records
        self._failure: dict[str, Any] = {}
        self.target: float | None = None
        self.t_max: float | None = None

    def check(self, snap: Snapshot, state: CheckState) -> tuple[bool, float | None]:
        rec = self._records.check
        if self.name == "temperature":
            self.target, self.t_max = rec.get("target_temperature"), rec.get("t_max")
        failed = next((f for f in rec.get("failed", []) if f["criterion"] == self.name), None)
        self._failure = {}
        if failed is not None:
            self._failure = {"threshold": failed.get("threshold"), "source": SOURCE}
            if failed.get("pair"):
                self._failure["pair"] = failed["pair"]
            if self.name == "temperature":
                self._failure["target_temperature"] = self.target
        return failed is None, rec.get("values", {}).get(self.name)

    def thresholds(self) -> dict[str, Any]:
        settings = self._records.start.get("settings", {})
        out: dict[str, Any] = {"judged_by": SOURCE}
        if self.name == "finite":
            out["max_nonfinite"] = 0
        elif self.name == "temperature":
            out.update(t_max=self.t_max, t_max_factor=settings.get("tfactor"),
                       t_min=settings.get("tmin"), target_temperature=self.target,
                       target_source=self._records.check.get("target_source"))  # fmt: skip
        elif self.name == "close_contact":
            thr = self._records.thresholds
            out.update(factor=settings.get("factor"), fallback=settings.get("fallback"),
                       pair_min_distance=dict(thr.get("pair_min_distance", {})),
                       pair_source=dict(thr.get("pair_source", {})))  # fmt: skip
        elif self.name == "energy_conservation":
            out.update(max_drift_per_atom=settings.get("drift"), e0=self._records.check.get("e0"))
        return out

    def failure_detail(self) -> dict[str, Any]:
        return dict(self._failure)


def fix_verdict_factory(records: FixRecords) -> CriterionFactory:
    """The tracker's criterion factory for a LAMMPS run: a :class:`FixVerdict` for each native
    criterion (NotApplicable with the fix's reason where it did not apply), the frame
    criteria built as under ASE; UsageError when the fix did not judge a native criterion the
    config enables, StabilityConfigError (:func:`check_lammps_criteria`) for any other."""
    start = records.start
    if "criteria" not in start or "settings" not in start:
        raise UsageError(
            "these records were written by an older fix gnnff/stability (they hold no "
            "verdict); rerun the input with this gnnff (`gnnff lammps run`)"
        )

    def build(name: str, config: StabilityConfig, context: CriterionContext) -> Criterion:
        if name in FRAME_CRITERIA:
            return build_registered(name, config, context)
        if name not in NATIVE_CRITERIA:
            check_lammps_criteria(StabilityConfig(criteria=[name]))
        reason = start.get("not_applicable", {}).get(name)
        if reason:
            raise NotApplicable(reason)
        if name not in start["criteria"]:
            raise UsageError(
                f"stability criterion {name!r} is enabled but fix gnnff/stability did not "
                f"judge it (it judged {start['criteria']}); rerun with the same settings "
                "for the fix and the report (`gnnff lammps run --stability`)"
            )
        return FixVerdict(name, criterion_class(name).order, records)

    return build
