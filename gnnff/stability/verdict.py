"""The one-line verdict of a stability report, printed the same way by every engine
(``gnnff md``, ``gnnff lammps run``, ``gnnff stability analyze``)."""

from __future__ import annotations

from typing import Any


def format_verdict(report: dict[str, Any]) -> str:
    """``"STATUS: stable TAU ps of T_RUN ps, S = S[, ended by CRITERION at step N]"``.

    ``report``: a stability report (``report.json``, :class:`gnnff.stability.StabilityTracker`),
    read for ``status``, ``stable_time_ps``, ``t_run_ps`` (ps), ``stability_index``,
    ``failed_criterion`` and ``failed_step``; a missing status or time reads as ``?`` / 0."""
    failed = report.get("failed_criterion")
    line = (
        f"{report.get('status', '?')}: stable {report.get('stable_time_ps') or 0.0:.4g} ps of "
        f"{report.get('t_run_ps') or 0.0:.4g} ps, S = {report.get('stability_index') or 0.0:.3f}"
    )
    if failed:
        line += f", ended by {failed} at step {report.get('failed_step')}"
    return line
