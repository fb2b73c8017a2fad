"""The stability criteria, one small class each (this project's own definitions).

Every criterion has a ``name``, its thresholds (``thresholds()``, written into the report) and
``check(snapshot, state) -> (ok, value)``. ``value`` is the measured quantity (None when it
cannot be measured at this frame, which counts as ok). After a failed check,
``failure_detail()`` gives the threshold that was crossed and any detail (e.g. the pair).

Criteria are registered by name in :data:`gnnff.extensions.CRITERIA` (the classes themselves;
the built-ins here and in :mod:`gnnff.stability.rdf_criterion`, other packages through the
``gnnff.criteria`` entry-point group). The tracker builds each enabled one with
``cls.from_config(config, context)``; ``order`` fixes which is reported first when several
fail at the same check.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from ase.data import atomic_numbers, covalent_radii

from gnnff.extensions import CRITERIA, PluginError
from gnnff.stability.config import StabilityConfigError
from gnnff.stability.geometry import FrameGeometry, all_pair_keys
from gnnff.stability.snapshot import Snapshot

if TYPE_CHECKING:
    from gnnff.stability.config import StabilityConfig
    from gnnff.stability.reference import StabilityReference


@dataclass
class CheckState:
    """Shared per-frame context: the frame's geometry is computed once, on first use, and
    reused by every criterion that needs it.

    ``target_temperature``: the thermostat's target at this check (K; None without a
    thermostat), read live from the engine, so a ramp or a new stage is followed.
    ``run_start``: this check is the setup of a run (the engine may have changed the
    configuration or velocities since the last check)."""

    snapshot: Snapshot
    symbols: list[str]
    geometry_fn: Callable[[], FrameGeometry | None] | None = None
    target_temperature: float | None = None
    run_start: bool = False
    _geometry: FrameGeometry | None = field(default=None, init=False, repr=False)
    _computed: bool = field(default=False, init=False, repr=False)

    @property
    def geometry(self) -> FrameGeometry | None:
        if not self._computed:
            self._geometry = self.geometry_fn() if self.geometry_fn is not None else None
            self._computed = True
        return self._geometry


class NotApplicable(Exception):
    """Raised by ``Criterion.from_config`` when the criterion does not apply to this run (the
    reason is written into the report, e.g. energy conservation under a thermostat)."""


@dataclass
class CriterionContext:
    """What a criterion may need besides the settings: the run's reference data, ensemble
    ("nve", "nvt" or "npt"), thermostat target (K, or None), the thermostat target's ramp
    ``(start, end)`` in K when the run ramps it (else None) and its own ``options`` (the
    ``criterion_options[name]`` mapping of the StabilityConfig, {} when not given)."""

    reference: StabilityReference | None = None
    ensemble: str = "nvt"
    target_temperature: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    target_ramp: tuple[float, float] | None = None


class Criterion:
    """Base class. Subclasses set ``name`` (= the registered name) and implement ``check``;
    ``from_config`` builds one for a run (override it to read settings or options)."""

    name: str = ""
    order: float = 100.0

    @classmethod
    def from_config(cls, config: StabilityConfig, context: CriterionContext) -> Criterion:
        """The criterion for a run. Raise :class:`NotApplicable` to skip it (with the reason),
        ValueError for bad options. Default: ``cls(**context.options)``."""
        try:
            return cls(**context.options)
        except TypeError as exc:
            raise StabilityConfigError(
                f"stability criterion {cls.name!r}: bad criterion_options {context.options}: {exc}"
            ) from None

    def check(self, snap: Snapshot, state: CheckState) -> tuple[bool, float | None]:
        raise NotImplementedError

    def thresholds(self) -> dict:
        return {}

    def failure_detail(self) -> dict:
        """Threshold crossed at the last failed check, plus any detail."""
        return {}


def _nonfinite(x) -> int:
    if x is None:
        return 0
    return int(np.size(x) - np.count_nonzero(np.isfinite(np.asarray(x, dtype=np.float64))))


class Finite(Criterion):
    """Positions, cell, forces, energies and temperature must all be finite numbers.

    value = number of non-finite entries (plus any engine-reported count)."""

    name = "finite"
    order = 0.0

    def check(self, snap: Snapshot, state: CheckState) -> tuple[bool, float | None]:
        count = (
            _nonfinite(snap.positions)
            + _nonfinite(snap.cell)
            + _nonfinite(snap.forces)
            + _nonfinite(snap.potential_energy)
            + _nonfinite(snap.kinetic_energy)
            + _nonfinite(snap.temperature)
            + _nonfinite(snap.max_force)
            + int(snap.n_nonfinite or 0)
        )
        return count == 0, float(count)

    def thresholds(self) -> dict:
        return {"max_nonfinite": 0}

    def failure_detail(self) -> dict:
        return {"threshold": 0}


class Temperature(Criterion):
    """T <= t_max (K); T >= t_min if set. t_max is given, or t_max_factor x the target AT THIS
    CHECK, which is (first that applies): a given target temperature; the thermostat's current
    target (``CheckState.target_temperature``: a ramp or a second stage is followed); else
    (NVE) the run's own initial temperature, i.e. the first positive T checked since the
    current run began (``CheckState.run_start`` starts a new run)."""

    name = "temperature"
    order = 1.0

    def __init__(
        self,
        t_max: float | None = None,
        t_max_factor: float = 3.0,
        target_temperature: float | None = None,
        t_min: float | None = None,
    ) -> None:
        self.t_max_given = t_max
        self.t_max = t_max  # the upper bound at the last check
        self.t_max_factor = float(t_max_factor)
        self.given_target = target_temperature
        self.target = target_temperature  # the target at the last check
        self.target_source = "given" if target_temperature is not None else None
        self.t_min = t_min
        self._run_initial: float | None = None
        self._last_bound: float | None = None

    @classmethod
    def from_config(cls, config: StabilityConfig, context: CriterionContext) -> Criterion:
        return cls(config.t_max, config.t_max_factor, context.target_temperature, config.t_min)

    def _resolve(self, temp: float, state: CheckState) -> None:
        """Set ``target``, its source and ``t_max`` for this check."""
        if state.run_start:
            self._run_initial = None
        if self._run_initial is None and np.isfinite(temp) and temp > 1e-8:
            self._run_initial = float(temp)
        live = state.target_temperature
        if self.given_target is not None:
            self.target, self.target_source = self.given_target, "given"
        elif live is not None and np.isfinite(live) and live > 0:
            self.target, self.target_source = float(live), "thermostat"
        elif self._run_initial is not None:
            self.target, self.target_source = self._run_initial, "run_initial"
        if self.t_max_given is not None:
            self.t_max = self.t_max_given
        elif self.target is not None and self.target > 0:
            self.t_max = self.t_max_factor * float(self.target)

    def check(self, snap: Snapshot, state: CheckState) -> tuple[bool, float | None]:
        temp = snap.temperature_value()
        if temp is None:
            return True, None
        self._resolve(temp, state)
        if not np.isfinite(temp):
            self._last_bound = self.t_max
            return False, float(temp)
        if self.t_max is not None and temp > self.t_max:
            self._last_bound = self.t_max
            return False, float(temp)
        if self.t_min is not None and temp < self.t_min:
            self._last_bound = self.t_min
            return False, float(temp)
        return True, float(temp)

    def thresholds(self) -> dict:
        """The bound and target at the last check (they follow the run: see the series)."""
        return {
            "t_max": self.t_max,
            "t_max_factor": self.t_max_factor,
            "t_min": self.t_min,
            "target_temperature": self.target,
            "target_source": self.target_source,
        }

    def failure_detail(self) -> dict:
        return {"threshold": self._last_bound, "target_temperature": self.target}


class CloseContact(Criterion):
    """Every species pair must stay at least factor x its reference minimum distance apart.

    value = the distance (A) of the pair closest to (or furthest below) its threshold."""

    name = "close_contact"
    order = 2.0

    def __init__(
        self,
        factor: float = 0.75,
        reference_min: dict[str, float] | None = None,
        fallback: str = "covalent",
    ) -> None:
        self.factor = float(factor)
        self.reference_min = dict(reference_min or {})
        self.fallback = fallback
        self.pair_thresholds: dict[str, float] = {}
        self.pair_sources: dict[str, str] = {}
        self._last: dict = {}

    @classmethod
    def from_config(cls, config: StabilityConfig, context: CriterionContext) -> Criterion:
        ref = context.reference
        return cls(
            config.contact_factor,
            ref.pair_min_distances if ref is not None else None,
            config.contact_fallback,
        )

    def resolve(self, symbols: list[str], first_geometry: FrameGeometry | None = None) -> None:
        """Fix the per-pair thresholds (A) for the species present."""
        for key in all_pair_keys(symbols):
            if key in self.pair_thresholds:
                continue
            if key in self.reference_min:
                base, src = self.reference_min[key], "reference"
            elif (
                self.fallback == "initial"
                and first_geometry is not None
                and key in first_geometry.pair_min
            ):
                base, src = first_geometry.pair_min[key], "initial"
            else:
                a, b = key.split("-")
                base = covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]]
                src = "covalent"
            self.pair_thresholds[key] = self.factor * float(base)
            self.pair_sources[key] = src

    def max_threshold(self) -> float:
        return max(self.pair_thresholds.values(), default=0.0)

    def check(self, snap: Snapshot, state: CheckState) -> tuple[bool, float | None]:
        geom = state.geometry
        if geom is None:
            # no usable positions: fall back on the engine's global minimum distance
            if snap.min_distance is None or not np.isfinite(snap.min_distance):
                return True, None
            if not self.pair_thresholds:
                self.resolve(state.symbols)
            bound = min(self.pair_thresholds.values())
            self._last = {"threshold": bound, "pair": "any"}
            d = float(snap.min_distance)
            return bool(d >= bound), d
        if not self.pair_thresholds or any(k not in self.pair_thresholds for k in geom.pair_min):
            self.resolve(state.symbols, geom)
        worst_key, worst_ratio = None, np.inf
        for key, d in geom.pair_min.items():
            ratio = d / self.pair_thresholds[key]
            if ratio < worst_ratio:
                worst_key, worst_ratio = key, ratio
        if worst_key is None:
            return True, None
        d = geom.pair_min[worst_key]
        self._last = {"threshold": self.pair_thresholds[worst_key], "pair": worst_key}
        return bool(worst_ratio >= 1.0), float(d)

    def thresholds(self) -> dict:
        return {
            "factor": self.factor,
            "fallback": self.fallback,
            "pair_min_distance": dict(self.pair_thresholds),
            "pair_source": dict(self.pair_sources),
        }

    def failure_detail(self) -> dict:
        return dict(self._last)


class EnergyConservation(Criterion):
    """NVE only: |E_tot(t) - E_tot(0)| / N <= threshold (eV/atom); E_tot(0) is the first
    checked frame with both energies of the current run (a run's setup, ``state.run_start``,
    starts a new reference: new velocities or a moved structure change E_tot legitimately).
    value = the drift per atom (eV)."""

    name = "energy_conservation"
    order = 3.0

    def __init__(self, per_atom: float = 0.05) -> None:
        self.per_atom = float(per_atom)
        self.e0: float | None = None

    @classmethod
    def from_config(cls, config: StabilityConfig, context: CriterionContext) -> Criterion:
        if context.ensemble != "nve":
            raise NotApplicable(f"checked in NVE only (ensemble={context.ensemble})")
        return cls(config.energy_drift_per_atom)

    def check(self, snap: Snapshot, state: CheckState) -> tuple[bool, float | None]:
        etot = snap.total_energy
        if etot is None or snap.n_atoms == 0:
            return True, None
        if not np.isfinite(etot):
            return False, float("nan")
        if self.e0 is None or state.run_start:
            self.e0 = etot
        drift = abs(etot - self.e0) / snap.n_atoms
        return bool(drift <= self.per_atom), float(drift)

    def thresholds(self) -> dict:
        return {"max_drift_per_atom": self.per_atom, "e0": self.e0}

    def failure_detail(self) -> dict:
        return {"threshold": self.per_atom}


def criterion_class(name: str) -> type[Criterion]:
    """The registered criterion ``name``: PluginError (a ValueError) listing the registered
    ones when unknown, TypeError when the registered object is not a Criterion subclass whose
    ``name`` is the registered name."""
    cls = CRITERIA.get(name)
    if not (isinstance(cls, type) and issubclass(cls, Criterion)):
        raise TypeError(
            f"stability criterion {name!r} ({CRITERIA.origin(name)}) must be registered as a "
            f"gnnff.stability.criteria.Criterion subclass, got {cls!r}"
        )
    if cls.name != name:
        raise PluginError(
            f"stability criterion registered as {name!r} ({CRITERIA.origin(name)}) has "
            f"name {cls.name!r}; the two must agree"
        )
    return cls


for _cls in (Finite, Temperature, CloseContact, EnergyConservation):
    CRITERIA.register(_cls.name, _cls, builtin=True)
