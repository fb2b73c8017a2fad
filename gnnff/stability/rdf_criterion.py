"""The structure criterion ``rdf`` (this project's own definition): the windowed radial
distribution function against the reference's. Registered in :data:`gnnff.extensions.CRITERIA`
on import, like the criteria of :mod:`gnnff.stability.criteria`."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from gnnff.extensions import CRITERIA
from gnnff.stability.config import StabilityConfigError
from gnnff.stability.criteria import CheckState, Criterion, CriterionContext, NotApplicable
from gnnff.stability.geometry import rdf_distance
from gnnff.stability.snapshot import Snapshot

if TYPE_CHECKING:
    from gnnff.stability.config import StabilityConfig

# A thermostat target that moves by more than this fraction of its start over the run is a
# ramp: the run's first window is then no reference for the rest of it.
RAMP_TOLERANCE = 0.05


class RDFStructure(Criterion):
    """Windowed g(r) vs the reference g(r): integral |g - g_ref| dr over [0, rmax] <= threshold.

    g(r) is averaged over the frames of the last ``window_ps`` ps (frames with
    t > t_now - window_ps). It is evaluated once the run has covered one full window; earlier
    checks return value None. Without a reference g(r), the first full window becomes the
    reference (its error is 0 by construction), except in a run whose thermostat target is
    ramped (``CriterionContext.target_ramp``): there the criterion does not apply, since a
    melting or heating structure legitimately leaves its start. value = the error (A).
    """

    name = "rdf"
    order = 4.0

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
        self._frames: deque[tuple[float, np.ndarray, dict[str, np.ndarray]]] = deque()
        self._t_first: float | None = None
        self.last_window_total: np.ndarray | None = None

    @classmethod
    def from_config(cls, config: StabilityConfig, context: CriterionContext) -> Criterion:
        ref = context.reference
        use_ref = config.rdf_reference in ("auto", "reference") and ref is not None and ref.has_rdf
        if config.rdf_reference == "reference" and not use_ref:
            raise StabilityConfigError(
                "rdf_reference='reference' but the stability reference has no RDF: "
                "rebuild it with RDF frames, or set rdf_reference to auto/first_window"
            )
        ramp = context.target_ramp
        if not use_ref and ramp is not None and abs(ramp[1] - ramp[0]) > RAMP_TOLERANCE * ramp[0]:
            raise NotApplicable(
                f"the thermostat's target is ramped or changed over the run ({ramp[0]:g} -> "
                f"{ramp[1]:g} K): the run's first window is no structural reference for its "
                "later, hotter or colder windows; judge the RDF against a stability reference "
                "that has one (rdf_reference: reference)"
            )
        if use_ref and ref is not None and ref.rdf_rmax is not None and ref.rdf_nbins is not None:
            return cls(config.rdf_threshold, config.rdf_window_ps, ref.rdf_rmax, ref.rdf_nbins,
                       config.rdf_mode, ref.rdf_total, ref.rdf_partial)  # fmt: skip
        return cls(config.rdf_threshold, config.rdf_window_ps, config.rdf_rmax,
                   config.rdf_nbins, config.rdf_mode)  # fmt: skip

    def _window_mean(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        total = np.mean([f[1] for f in self._frames], axis=0)
        keys = sorted({k for f in self._frames for k in f[2]})
        partial = {
            k: np.mean([f[2].get(k, np.zeros(self.nbins)) for f in self._frames], axis=0)
            for k in keys
        }
        return total, partial

    def _error(self, total: np.ndarray, partial: dict[str, np.ndarray], snap: Snapshot) -> float:
        assert self.ref_total is not None  # set from the first window at the latest
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

    def thresholds(self) -> dict[str, Any]:
        return {
            "max_error": self.threshold,
            "window_ps": self.window_ps,
            "rmax": self.rmax,
            "nbins": self.nbins,
            "mode": self.mode,
            "reference_source": self.reference_source,
            "reference_time_ps": self.reference_time_ps,
        }

    def failure_detail(self) -> dict[str, Any]:
        return {"threshold": self.threshold}


CRITERIA.register(RDFStructure.name, RDFStructure, builtin=True)
