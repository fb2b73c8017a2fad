"""report.png: the time series of a stability report, with thresholds and the failure marked."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import numpy as np


def _arr(values: Iterable[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _crit(report: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((c for c in report.get("criteria", []) if c["name"] == name), None)


def plot_report(report: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Draw the report's panels (T, E_tot drift per atom, per-pair minimum distances, max force,
    RDF error, final g(r)) into a PNG at ``path``."""
    # a bare Figure (no pyplot) leaves the user's backend and global state alone
    from matplotlib.figure import Figure

    s = report["series"]
    t = _arr(s["time_ps"])
    rdf = report.get("rdf") or {}
    has_g = rdf.get("g_ref") is not None or rdf.get("g_last_window") is not None
    n_panels = 6 if has_g else 5
    fig = Figure(figsize=(7.5, 2.0 * n_panels))
    axes = fig.subplots(n_panels, 1, squeeze=False)
    axes = axes[:, 0]
    tau = report.get("failed_time_ps")

    def mark(ax: Any) -> None:
        if tau is not None:
            ax.axvline(tau, color="red", lw=1.2, ls="--", label="first failure")

    ax = axes[0]
    ax.plot(t, _arr(s["temperature"]), color="tab:orange", lw=1)
    c = _crit(report, "temperature")
    if c and c.get("t_max") is not None:
        ax.axhline(c["t_max"], color="k", ls=":", lw=1, label="T_max")
    if c and c.get("t_min") is not None:
        ax.axhline(c["t_min"], color="k", ls=":", lw=1)
    ax.set_ylabel("T (K)")
    mark(ax)

    ax = axes[1]
    ax.plot(t, _arr(s["energy_drift_per_atom"]), color="tab:blue", lw=1)
    c = _crit(report, "energy_conservation")
    if c and c.get("applicable"):
        lim = c["max_drift_per_atom"]
        ax.axhline(lim, color="k", ls=":", lw=1)
        ax.axhline(-lim, color="k", ls=":", lw=1)
    ax.set_ylabel("dE_tot/N (eV)")
    mark(ax)

    ax = axes[2]
    c = _crit(report, "close_contact") or {}
    thresholds = c.get("pair_min_distance", {})
    for k, (pair, values) in enumerate(sorted(s["min_distance"].items())):
        color = f"C{k % 10}"
        ax.plot(t, _arr(values), color=color, lw=1, label=pair)
        if pair in thresholds and thresholds[pair] is not None:
            ax.axhline(thresholds[pair], color=color, ls=":", lw=1)
    if any(v is not None for v in s.get("engine_min_distance", [])):
        ax.plot(t, _arr(s["engine_min_distance"]), color="k", lw=0.8, label="engine min")
    ax.set_ylabel("min dist (A)")
    if s["min_distance"]:
        ax.legend(fontsize=7, ncol=4, loc="best")
    mark(ax)

    ax = axes[3]
    f = _arr(s["max_force"])
    ax.plot(t, f, color="tab:green", lw=1)
    if np.any(np.isfinite(f) & (f > 0)):
        ax.set_yscale("log")
    ax.set_ylabel("max |F| (eV/A)")
    mark(ax)

    ax = axes[4]
    ax.plot(t, _arr(s["rdf_error"]), color="tab:purple", lw=1, marker=".", ms=2)
    c = _crit(report, "rdf")
    if c:
        ax.axhline(c["max_error"], color="k", ls=":", lw=1)
    ax.set_ylabel("RDF error (A)")
    ax.set_xlabel("time (ps)")
    mark(ax)
    for a in axes[1:5]:
        a.sharex(axes[0])

    if has_g:
        ax = axes[5]
        r = _arr(rdf["r"])
        if rdf.get("g_ref") is not None:
            ax.plot(r, _arr(rdf["g_ref"]), color="k", lw=1, label="reference")
        if rdf.get("g_last_window") is not None:
            ax.plot(r, _arr(rdf["g_last_window"]), color="tab:purple", lw=1, label="last window")
        ax.set_xlabel("r (A)")
        ax.set_ylabel("g(r)")
        ax.legend(fontsize=7)

    status = report.get("status", "?")
    title = (
        f"{status}: tau = {report.get('stable_time_ps', 0):.4g} ps, "
        f"S = {report.get('stability_index', 0):.3f}"
    )
    if report.get("failed_criterion"):
        title += f" ({report['failed_criterion']} at step {report.get('failed_step')})"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)
