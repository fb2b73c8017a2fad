"""Stability criteria settings (this project's own definitions; see gnnff.stability)."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any


def default_criteria() -> list[str]:
    """The criteria enabled when none are named: every built-in one (finite, temperature,
    close_contact, energy_conservation, rdf); plug-in criteria are enabled by name."""
    from gnnff.extensions import CRITERIA

    return list(CRITERIA.builtin_names())


def _suggest(name: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass
class StabilityConfig:
    """Thresholds and cadence of the stability checks.

    interval: MD steps between checks. criteria: names of the enabled checks, registered in
    ``gnnff.extensions.CRITERIA`` (default: the built-in ones; energy_conservation applies to NVE
    runs only). criterion_options: {criterion name: {option: value}} for criteria that take
    options (plug-ins; the built-ins read the settings below).
    Temperature: fail when T > t_max (K) if given, else T > t_max_factor x target temperature;
    optional lower bound t_min (K).
    Close contact: fail when a species pair comes closer than contact_factor x the smallest
    distance of that pair in the reference (training) frames; pairs missing from the reference
    use contact_factor x (sum of covalent radii) when contact_fallback = "covalent", or
    contact_factor x their distance in the first checked frame when "initial".
    Energy conservation (NVE): fail when |E_tot(t) - E_tot(0)| / N > energy_drift_per_atom (eV).
    RDF: g(r) averaged over a sliding window of rdf_window_ps (ps) vs the reference g(r);
    fail when the integral of |g - g_ref| dr over [0, rdf_rmax] (A) > rdf_threshold (A).
    rdf_mode "total" compares the total g(r); "partial" compares each species pair, weighted
    by the pair fractions c_a c_b (x2 for a != b). rdf_reference "auto" uses the reference's
    RDF when it has one, else the run's first full window; "first_window" always uses the
    latter; "reference" requires the reference's RDF.
    distance_radius: search radius (A) for the per-pair minimum distances (None: automatic).
    stop_on_failure: stop the dynamics at the first failed check.
    """

    interval: int = 10
    criteria: list[str] = field(default_factory=default_criteria)
    t_max_factor: float = 3.0
    t_max: float | None = None
    t_min: float | None = None
    contact_factor: float = 0.75
    contact_fallback: str = "covalent"
    energy_drift_per_atom: float = 0.05
    rdf_window_ps: float = 0.5
    rdf_rmax: float = 6.0
    rdf_nbins: int = 120
    rdf_threshold: float = 1.0
    rdf_mode: str = "total"
    rdf_reference: str = "auto"
    distance_radius: float | None = None
    stop_on_failure: bool = True
    criterion_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the bad setting and what would be valid."""
        if isinstance(self.criteria, str):
            self.criteria = [self.criteria]
        self.criteria = list(self.criteria)
        from gnnff.extensions import CRITERIA

        for name in self.criteria:
            if not isinstance(name, str):
                raise ValueError(CRITERIA.unknown_message(name))
            CRITERIA.get(name)  # PluginError listing the registered criteria when unknown
        opts = self.criterion_options
        if not isinstance(opts, dict) or not all(isinstance(v, dict) for v in opts.values()):
            raise ValueError(
                f"criterion_options must map criterion names to mappings, got {opts!r}"
            )
        unused = sorted(set(opts) - set(self.criteria))
        if unused:
            raise ValueError(
                f"criterion_options names {unused}, which are not enabled criteria "
                f"{self.criteria}; add them to 'criteria' or remove their options"
            )
        if int(self.interval) != self.interval or self.interval < 1:
            raise ValueError(f"interval must be a positive integer (steps), got {self.interval}")
        self.interval = int(self.interval)
        positive = {
            "t_max_factor": self.t_max_factor,
            "contact_factor": self.contact_factor,
            "energy_drift_per_atom": self.energy_drift_per_atom,
            "rdf_window_ps": self.rdf_window_ps,
            "rdf_rmax": self.rdf_rmax,
            "rdf_threshold": self.rdf_threshold,
        }
        for key, value in positive.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{key} must be a positive number, got {value!r}")
        for key in ("t_max", "t_min", "distance_radius"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, (int, float)) or value <= 0):
                raise ValueError(f"{key} must be a positive number or null, got {value!r}")
        if self.t_max is not None and self.t_min is not None and self.t_min >= self.t_max:
            raise ValueError(f"t_min ({self.t_min} K) must be below t_max ({self.t_max} K)")
        if int(self.rdf_nbins) != self.rdf_nbins or self.rdf_nbins < 2:
            raise ValueError(f"rdf_nbins must be an integer >= 2, got {self.rdf_nbins!r}")
        self.rdf_nbins = int(self.rdf_nbins)
        choices = {
            "contact_fallback": ("covalent", "initial"),
            "rdf_mode": ("total", "partial"),
            "rdf_reference": ("auto", "reference", "first_window"),
        }
        for key, allowed in choices.items():
            value = getattr(self, key)
            if value not in allowed:
                raise ValueError(
                    f"{key} must be one of {', '.join(allowed)}, got {value!r}"
                    f"{_suggest(str(value), allowed)}"
                )
        if not isinstance(self.stop_on_failure, bool):
            raise ValueError(f"stop_on_failure must be true or false, got {self.stop_on_failure!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> StabilityConfig:
        """Build from a mapping; unknown keys are an error (with a did-you-mean hint).

        A mapping with a single top-level ``stability`` key is unwrapped.
        """
        d = dict(d or {})
        if set(d) == {"stability"} and isinstance(d["stability"], dict):
            d = dict(d["stability"])
        known = {f.name for f in fields(cls)}
        for key in d:
            if key not in known:
                raise ValueError(
                    f"unknown stability setting '{key}'{_suggest(key, known)}; "
                    f"valid settings: {', '.join(sorted(known))}"
                )
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> StabilityConfig:
        """Read settings from a YAML file (a mapping of the fields above)."""
        from ..io_utils import load_yaml

        data = load_yaml(path)
        if data is not None and not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of stability settings, got {type(data)}")
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
