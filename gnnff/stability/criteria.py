"""The stability criteria, one small class each (this project's own definitions).

Every criterion has a ``name``, its thresholds (``thresholds()``, written into the report) and
``check(snapshot, state) -> (ok, value)``. ``value`` is the measured quantity (None when it
cannot be measured at this frame, which counts as ok). After a failed check,
``failure_detail()`` gives the threshold that was crossed and any detail (e.g. the pair).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from ase.data import atomic_numbers, covalent_radii

from gnnff.stability.geometry import FrameGeometry, all_pair_keys, rdf_distance
from gnnff.stability.snapshot import Snapshot


@dataclass
class CheckState:
    """Shared per-frame context: the frame's geometry is computed once, on first use, and
    reused by every criterion that needs it."""

    snapshot: Snapshot
    symbols: list[str]
    geometry_fn: Callable[[], FrameGeometry | None] | None = None
    _geometry: FrameGeometry | None = field(default=None, init=False, repr=False)
    _computed: bool = field(default=False, init=False, repr=False)

    @property
    def geometry(self) -> FrameGeometry | None:
        if not self._computed:
            self._geometry = self.geometry_fn() if self.geometry_fn is not None else None
            self._computed = True
        return self._geometry


class Criterion:
    """Base class. Subclasses set ``name`` and implement ``check``."""

    name: str = ""

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
    """T <= t_max (K), with t_max given or t_max_factor x the target temperature; T >= t_min if
    set. Without a target temperature (e.g. NVE), the first positive temperature checked is
    the target."""

    name = "temperature"

    def __init__(
        self,
        t_max: float | None = None,
        t_max_factor: float = 3.0,
        target_temperature: float | None = None,
        t_min: float | None = None,
    ) -> None:
        self.t_max = t_max
        self.t_max_factor = float(t_max_factor)
        self.target = target_temperature
        self.target_source = "given" if target_temperature is not None else None
        self.t_min = t_min
        self._last_bound: float | None = None

    def _resolve(self, temp: float) -> None:
        if self.t_max is not None:
            return
        if self.target is None and temp > 1e-8:
            self.target = float(temp)
            self.target_source = "first_snapshot"
        if self.target is not None and self.target > 0:
            self.t_max = self.t_max_factor * float(self.target)

    def check(self, snap: Snapshot, state: CheckState) -> tuple[bool, float | None]:
        temp = snap.temperature_value()
        if temp is None:
            return True, None
        if not np.isfinite(temp):
            self._last_bound = self.t_max
            return False, float(temp)
        self._resolve(temp)
        if self.t_max is not None and temp > self.t_max:
            self._last_bound = self.t_max
            return False, float(temp)
        if self.t_min is not None and temp < self.t_min:
            self._last_bound = self.t_min
            return False, float(temp)
        return True, float(temp)

    def thresholds(self) -> dict:
        return {
            "t_max": self.t_max,
            "t_max_factor": self.t_max_factor,
            "t_min": self.t_min,
            "target_temperature": self.target,
            "target_source": self.target_source,
        }

    def failure_detail(self) -> dict:
        return {"threshold": self._last_bound}


class CloseContact(Criterion):
    """Every species pair must stay at least factor x its reference minimum distance apart.

    value = the distance (A) of the pair closest to (or furthest below) its threshold."""

    name = "close_contact"

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
    checked frame with both energies. value = the drift per atom (eV)."""

    name = "energy_conservation"

    def __init__(self, per_atom: float = 0.05) -> None:
        self.per_atom = float(per_atom)
        self.e0: float | None = None

    def check(self, snap: Snapshot, state: CheckState) -> tuple[bool, float | None]:
        etot = snap.total_energy
        if etot is None or snap.n_atoms == 0:
            return True, None
        if not np.isfinite(etot):
            return False, float("nan")
        if self.e0 is None:
            self.e0 = etot
        drift = abs(etot - self.e0) / snap.n_atoms
        return bool(drift <= self.per_atom), float(drift)

    def thresholds(self) -> dict:
        return {"max_drift_per_atom": self.per_atom, "e0": self.e0}

    def failure_detail(self) -> dict:
        return {"threshold": self.per_atom}


class RDFStructure(Criterion):
    """Windowed g(r) vs the reference g(r): integral |g - g_ref| dr over [0, rmax] <= threshold.

    g(r) is averaged over the frames of the last ``window_ps`` ps (frames with
    t > t_now - window_ps). It is evaluated once the run has covered one full window; earlier
    checks return value None. Without a reference g(r), the first full window becomes the
    reference (its error is 0 by construction). value = the error (A).
    """

    name = "rdf"

    def __init__(
        self,
        threshold: float = 1.0,
        window_ps: float = 0.5,
        rmax: float = 6.0,
        nbins: int = 120,
        mode: str = "total",
        reference_total: np.ndarray | None = None,
        reference_partial: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.threshold = float(threshold)
        self.window_ps = float(window_ps)
        self.rmax = float(rmax)
        self.nbins = int(nbins)
        self.mode = mode
        self.ref_total = None if reference_total is None else np.asarray(reference_total)
        self.ref_partial = {k: np.asarray(v) for k, v in (reference_partial or {}).items()}
        self.reference_source = "reference" if self.ref_total is not None else "first_window"
        self.reference_time_ps: float | None = None
        self._frames: deque = deque()
        self._t_first: float | None = None
        self.last_window_total: np.ndarray | None = None

    def _window_mean(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        total = np.mean([f[1] for f in self._frames], axis=0)
        keys = sorted({k for f in self._frames for k in f[2]})
        partial = {
            k: np.mean([f[2].get(k, np.zeros(self.nbins)) for f in self._frames], axis=0)
            for k in keys
        }
        return total, partial

    def _error(self, total, partial, snap: Snapshot) -> float:
        if self.mode == "total":
            return rdf_distance(total, self.ref_total, self.rmax)
        from ase.data import chemical_symbols

        counts: dict[str, int] = {}
        for z in snap.numbers:
            s = chemical_symbols[int(z)]
            counts[s] = counts.get(s, 0) + 1
        n = float(snap.n_atoms)
        err = 0.0
        for key in sorted(set(partial) | set(self.ref_partial)):
            a, b = key.split("-")
            w = counts.get(a, 0) * counts.get(b, 0) / (n * n) * (1.0 if a == b else 2.0)
            g = partial.get(key, np.zeros(self.nbins))
            g_ref = self.ref_partial.get(key, np.zeros(self.nbins))
            err += w * rdf_distance(g, g_ref, self.rmax)
        return err

    def check(self, snap: Snapshot, state: CheckState) -> tuple[bool, float | None]:
        geom = state.geometry
        if geom is None or geom.rdf_total is None:
            return True, None
        t = snap.time_ps
        if self._t_first is None:
            self._t_first = t
        self._frames.append((t, geom.rdf_total, geom.rdf_partial))
        while self._frames and self._frames[0][0] <= t - self.window_ps + 1e-9:
            self._frames.popleft()
        if t - self._t_first < self.window_ps - 1e-9:
            return True, None
        total, partial = self._window_mean()
        self.last_window_total = total
        if self.ref_total is None:
            self.ref_total, self.ref_partial = total, partial
            self.reference_time_ps = t
        err = self._error(total, partial, snap)
        return bool(err <= self.threshold), float(err)

    def thresholds(self) -> dict:
        return {
            "max_error": self.threshold,
            "window_ps": self.window_ps,
            "rmax": self.rmax,
            "nbins": self.nbins,
            "mode": self.mode,
            "reference_source": self.reference_source,
            "reference_time_ps": self.reference_time_ps,
        }

    def failure_detail(self) -> dict:
        return {"threshold": self.threshold}
