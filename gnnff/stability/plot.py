"""report.png: the time series of a stability report, with thresholds and the failure marked."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

from gnnff.errors import require_extra

from .verdict import format_verdict

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _arr(values: Iterable[float | None]) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _crit(report: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((c for c in report.get("criteria", []) if c["name"] == name), None)


def report_panels(report: dict[str, Any]) -> list[str]:
    """The panels ``report.png`` draws, top to bottom: ``temperature``; ``energy_drift`` for
    NVE runs only (energy is not conserved under a thermostat or barostat);
    ``min_distance``; ``max_force``; ``rdf_error`` when the run has an RDF error value (a run
    shorter than the RDF window has none); ``g_r`` when the report holds a g(r)."""
    s = report["series"]
    names = ["temperature"]
    if str(report.get("ensemble", "nve")).lower() == "nve":  # old reports: keep the panel
        names.append("energy_drift")
    names += ["min_distance", "max_force"]
    if np.any(np.isfinite(_arr(s.get("rdf_error", [])))):
        names.append("rdf_error")
    rdf = report.get("rdf") or {}
    if rdf.get("g_ref") is not None or rdf.get("g_last_window") is not None:
        names.append("g_r")
    return names


def plot_report(report: dict[str, Any], path: str | os.PathLike[str]) -> Figure:
    """Draw the report's panels (:func:`report_panels`: T, E_tot drift per atom, per-pair
    minimum distances, max force, RDF error, final g(r)) into a PNG at ``path``, titled with
    the report's verdict line; returns the figure (each axes labelled with its panel name)."""
    # a bare Figure (no pyplot) leaves the user's backend and global state alone
    require_extra("matplotlib", "plots", "report.png")
    from matplotlib.figure import Figure

    s = report["series"]
    t = _arr(s["time_ps"])
    names = report_panels(report)
    fig = Figure(figsize=(7.5, 2.0 * len(names)))
    axes = dict(zip(names, fig.subplots(len(names), 1, squeeze=False)[:, 0], strict=True))
    tau = report.get("failed_time_ps")
    for name, ax in axes.items():
        ax.set_label(name)
        if name == "g_r":
            continue
        if tau is not None:
            ax.axvline(tau, color="red", lw=1.2, ls="--", label="first failure")
        if name != "temperature":
            ax.sharex(axes["temperature"])

    ax = axes["temperature"]
    ax.plot(t, _arr(s["temperature"]), color="tab:orange", lw=1)
    c = _crit(report, "temperature")
    if s.get("t_max") and len(s["t_max"]) == len(t):
        # the bound at every check: it follows the thermostat's live target (ramps, stages)
        ax.plot(t, _arr(s["t_max"]), color="k", ls=":", lw=1, label="T_max")
    elif c and c.get("t_max") is not None:
        ax.axhline(c["t_max"], color="k", ls=":", lw=1, label="T_max")
    if c and c.get("t_min") is not None:
        ax.axhline(c["t_min"], color="k", ls=":", lw=1)
    ax.set_ylabel("T (K)")

    if "energy_drift" in axes:
        ax = axes["energy_drift"]
        ax.plot(t, _arr(s["energy_drift_per_atom"]), color="tab:blue", lw=1)
        c = _crit(report, "energy_conservation")
        if c and c.get("applicable"):
            lim = c["max_drift_per_atom"]
            ax.axhline(lim, color="k", ls=":", lw=1)
            ax.axhline(-lim, color="k", ls=":", lw=1)
        ax.set_ylabel("dE_tot/N (eV)")

    ax = axes["min_distance"]
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

    ax = axes["max_force"]
    f = _arr(s["max_force"])
    ax.plot(t, f, color="tab:green", lw=1)
    if np.any(np.isfinite(f) & (f > 0)):
        ax.set_yscale("log")
    ax.set_ylabel("max |F| (eV/A)")

    if "rdf_error" in axes:
        ax = axes["rdf_error"]
        ax.plot(t, _arr(s["rdf_error"]), color="tab:purple", lw=1, marker=".", ms=2)
        c = _crit(report, "rdf")
        if c:
            ax.axhline(c["max_error"], color="k", ls=":", lw=1)
        ax.set_ylabel("RDF error (A)")
    time_axes = [a for n, a in axes.items() if n != "g_r"]
    time_axes[-1].set_xlabel("time (ps)")

    if "g_r" in axes:
        ax = axes["g_r"]
        rdf = report["rdf"]
        r = _arr(rdf["r"])
        if rdf.get("g_ref") is not None:
            ax.plot(r, _arr(rdf["g_ref"]), color="k", lw=1, label="reference")
        if rdf.get("g_last_window") is not None:
            ax.plot(r, _arr(rdf["g_last_window"]), color="tab:purple", lw=1, label="last window")
        ax.set_xlabel("r (A)")
        ax.set_ylabel("g(r)")
        ax.legend(fontsize=7)

    fig.suptitle(format_verdict(report), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=90)
    return fig
