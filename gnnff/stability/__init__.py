"""MD stability: criteria, tracker, ASE monitor, reports and the Stability Index.

These are gnnff's own definitions (not taken from any paper). Every ``interval`` MD steps a
run is checked against:

1. finite: positions, cell, forces, energies, temperature are finite;
2. temperature: T <= T_max (default 3 x target T; optional lower bound T_min);
3. close contact: each species pair stays >= f x its smallest distance in the reference
   (training) frames (default f = 0.75);
4. energy conservation (NVE only): |E_tot(t) - E_tot(0)| / N <= 0.05 eV/atom;
5. structure (rdf): g(r) averaged over a sliding window (default 0.5 ps) vs the reference g(r)
   (reference-potential MD at the same state point, or the run's first window):
   integral |g - g_ref| dr over [0, r_max] <= 1.0 A.

Stable time tau = time of the first failed check (the run length t_run if none); Stability
Index S = tau / t_run in [0, 1]. Over several runs: median tau, mean S, fraction with S = 1 and
which criterion ended each run (``summarize_runs``). Thresholds are configurable
(``StabilityConfig``) and written into every report; more criteria plug in through
``gnnff.extensions.CRITERIA`` (docs/architecture.md). The same tracker serves ASE
(``StabilityMonitor``) and the LAMMPS driver, where ``fix gnnff/stability`` judges the
built-in criteria natively and the tracker reads its verdict (``gnnff.lammps.fix_verdict``);
plug-in criteria judge ASE runs only.

Public names are imported lazily (``gnnff._lazy``) so that ``gnnff --help`` stays free of
torch and ASE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gnnff._lazy import lazy_exports

_EXPORTS = {
    "StabilityConfig": "config",
    "default_criteria": "config",
    "CloseContact": "criteria",
    "Criterion": "criteria",
    "CriterionContext": "criteria",
    "EnergyConservation": "criteria",
    "Finite": "criteria",
    "NotApplicable": "criteria",
    "criterion_class": "criteria",
    "RDFStructure": "rdf_criterion",
    "Temperature": "criteria",
    "load_reports": "index",
    "summarize_runs": "index",
    "StabilityMonitor": "monitor",
    "StabilityStop": "monitor",
    "run_monitored": "monitor",
    "StabilityReference": "reference",
    "Snapshot": "snapshot",
    "StabilityTracker": "tracker",
    "format_verdict": "verdict",
}

__all__ = [
    "CloseContact",
    "Criterion",
    "CriterionContext",
    "EnergyConservation",
    "Finite",
    "NotApplicable",
    "RDFStructure",
    "Snapshot",
    "StabilityConfig",
    "StabilityMonitor",
    "StabilityReference",
    "StabilityStop",
    "StabilityTracker",
    "Temperature",
    "criterion_class",
    "default_criteria",
    "format_verdict",
    "load_reports",
    "run_monitored",
    "summarize_runs",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:  # static view for type checkers and IDEs
    from gnnff.stability.config import StabilityConfig, default_criteria
    from gnnff.stability.criteria import (
        CloseContact,
        Criterion,
        CriterionContext,
        EnergyConservation,
        Finite,
        NotApplicable,
        Temperature,
        criterion_class,
    )
    from gnnff.stability.index import load_reports, summarize_runs
    from gnnff.stability.monitor import StabilityMonitor, StabilityStop, run_monitored
    from gnnff.stability.rdf_criterion import RDFStructure
    from gnnff.stability.reference import StabilityReference
    from gnnff.stability.snapshot import Snapshot
    from gnnff.stability.tracker import StabilityTracker
    from gnnff.stability.verdict import format_verdict
