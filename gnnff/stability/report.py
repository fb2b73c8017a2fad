"""The stability report (``report.json``, format ``gnnff-stability-report`` version 1): built
from a :class:`~gnnff.stability.tracker.StabilityTracker` and written with its figure."""

from __future__ import annotations

import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from gnnff import __version__
from gnnff.errors import MissingExtraError
from gnnff.io_utils import atomic_write, atomic_write_json

REPORT_FORMAT = "gnnff-stability-report"
REPORT_VERSION = 1
DEFINITION = (
    "tau = time of the first failed check (t_run if none); "
    "S = tau / t_run (gnnff's own Stability Index)"
)


def json_safe(x: Any) -> Any:
    """JSON-safe copy: numpy -> Python, NaN/inf -> None."""
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return [json_safe(v) for v in x.tolist()]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


def build_report(tracker: Any) -> dict[str, Any]:
    """The report of ``tracker`` (a :class:`~gnnff.stability.tracker.StabilityTracker`, not
    imported here: the tracker imports this module) as a JSON-ready dict (times in ps, S in
    [0, 1])."""
    ff = tracker.first_failure
    rdf = tracker.criterion("rdf")
    rdf_info = None
    if rdf is not None:
        rmax, nbins = float(rdf.rmax), int(rdf.nbins)
        edges = np.linspace(0.0, rmax, nbins + 1)
        rdf_info = {
            "r": 0.5 * (edges[1:] + edges[:-1]),
            "g_ref": rdf.ref_total,
            "g_last_window": rdf.last_window_total,
        }
    ref = tracker.reference
    last = tracker.last_snapshot
    rep = {
        "format": REPORT_FORMAT,
        "format_version": REPORT_VERSION,
        "gnnff_version": __version__,
        "definition": DEFINITION,
        "status": tracker.status,
        "stable_time_ps": tracker.stable_time_ps,
        "stability_index": tracker.stability_index,
        "t_run_ps": tracker.t_run_ps,
        "failed_criterion": ff["criterion"] if ff else None,
        "failed_step": ff["step"] if ff else None,
        "failed_time_ps": ff["time_ps"] if ff else None,
        "failure": ff,
        "interrupt_reason": tracker.interrupt_reason,
        "halt": tracker.halt,
        "n_atoms": tracker.n_atoms,
        "species": tracker.symbols,
        "ensemble": tracker.ensemble,
        "target_temperature": tracker.target_temperature,
        "n_checks": tracker.n_checks,
        "last_step": last.step if last is not None else None,
        "last_time_ps": tracker.last_time_ps,
        "criteria": tracker.criteria_info(),
        "config": tracker.config.to_dict(),
        "reference": None
        if ref is None
        else {
            "source": ref.source,
            "n_frames": ref.n_frames,
            "pair_min_distances": ref.pair_min_distances,
            "has_rdf": ref.has_rdf,
        },
        "series": tracker.series,
        "rdf": rdf_info,
    }
    out: dict[str, Any] = json_safe(rep)
    return out


class ReportWriter:
    """Writes ``report.json`` and ``report.png`` into a folder (atomically); a missing
    ``plots`` extra is noted once per writer, any other plotting error is a warning, and
    neither loses the JSON."""

    def __init__(self) -> None:
        self._plots_note_shown = False

    def write(self, report: dict[str, Any], out_dir: str | os.PathLike[str]) -> None:
        out = Path(out_dir)
        atomic_write_json(out / "report.json", report)
        try:
            from gnnff.stability.plot import plot_report

            def draw(path: Path) -> None:
                plot_report(report, path)

            atomic_write(out / "report.png", draw)
        except MissingExtraError as exc:  # plots are an extra: say so once per run, briefly
            if not self._plots_note_shown:
                print(f"note: report.png skipped: {exc}", file=sys.stderr)
                self._plots_note_shown = True
        except Exception as exc:  # the JSON is the record; the figure is a convenience
            warnings.warn(f"could not draw {out / 'report.png'}: {exc}", stacklevel=3)
