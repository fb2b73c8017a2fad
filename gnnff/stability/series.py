"""The time series a :class:`~gnnff.stability.tracker.StabilityTracker` records at every check
(the ``series`` section of the stability report)."""

from __future__ import annotations

import math
from typing import Any

from gnnff.stability.snapshot import Snapshot

SERIES_KEYS = (
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


class CheckSeries:
    """One list per quantity (``data[key][k]``: the value at check k, None where unknown) and
    ``data["min_distance"][pair]`` per species pair (A). Units: time ps, energies eV,
    temperatures K, forces eV/A, distances A; ``energy_drift_per_atom`` is
    (E_tot - E_tot at the first finite check) / N in eV (a record, not the criterion)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {k: [] for k in SERIES_KEYS}
        self.data["min_distance"] = {}
        self._e0: float | None = None

    def add_pairs(self, keys: list[str]) -> None:
        """Start a (so far empty) per-pair minimum-distance series for each key not yet kept."""
        for key in keys:
            self.data["min_distance"].setdefault(key, [])

    def append(
        self,
        snap: Snapshot,
        values: dict[str, float | None],
        pair_min: dict[str, float],
        target_temperature: float | None,
        t_max: float | None,
    ) -> None:
        """Record one check: the snapshot's quantities, the criteria's ``values`` (by
        criterion name), the frame's per-pair minimum distances and the temperature bound."""
        s = self.data
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
        s["target_temperature"].append(target_temperature)
        s["t_max"].append(t_max)
        n_before = len(s["step"]) - 1
        for key in pair_min:
            s["min_distance"].setdefault(key, [None] * n_before)
        for key, series in s["min_distance"].items():
            series.append(pair_min.get(key))
