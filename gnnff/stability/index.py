"""Stability Index over a set of runs (this project's own summary)."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Any

import numpy as np

from gnnff.errors import UsageError


def load_reports(paths: list[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Read report.json files (a folder means its report.json)."""
    out = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            p = os.path.join(p, "report.json")
        if not os.path.isfile(p):
            raise FileNotFoundError(f"stability report {p} does not exist")
        try:
            with open(p) as fh:
                rep = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(
                f"{p} is not a JSON stability report ({exc}); give the "
                "report.json that gnnff md / gnnff lammps run wrote"
            ) from None
        if not isinstance(rep, dict) or rep.get("format") != "gnnff-stability-report":
            fmt = rep.get("format") if isinstance(rep, dict) else None
            raise UsageError(f"{p} is not a gnnff stability report (format={fmt!r})")
        rep.setdefault("path", p)
        out.append(rep)
    return out


def summarize_runs(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Median stable time tau (ps), mean S, fraction of runs with S == 1, and what ended each
    run: the failed criterion, "interrupted", or "none" (ran to the end)."""
    if not reports:
        raise UsageError("summarize_runs needs at least one report")
    taus = np.array([float(r["stable_time_ps"]) for r in reports])
    s = np.array([float(r["stability_index"]) for r in reports])
    ended = []
    for r in reports:
        if r.get("failed_criterion"):
            ended.append(r["failed_criterion"])
        elif r.get("status") == "interrupted":
            ended.append("interrupted")
        else:
            ended.append("none")
    return {
        "n_runs": len(reports),
        "median_stable_time_ps": float(np.median(taus)),
        "mean_stable_time_ps": float(np.mean(taus)),
        "mean_stability_index": float(np.mean(s)),
        "fraction_stable": float(np.mean(s >= 1.0 - 1e-12)),
        "ended_by": dict(sorted(Counter(ended).items())),
        "t_run_ps": sorted({float(r["t_run_ps"]) for r in reports}),
        "runs": [
            {
                "path": r.get("path"),
                "stable_time_ps": float(t),
                "stability_index": float(x),
                "ended_by": e,
            }
            for r, t, x, e in zip(reports, taus, s, ended, strict=True)
        ],
    }
