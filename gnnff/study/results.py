"""Reading a study folder: one row per MD run (its report, its model's evaluation and training
summary), the runs stopped by a software error, and per-model extras (short-range walls,
training seconds)."""

from __future__ import annotations

import csv
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from gnnff.io_utils import atomic_write_text

__all__ = ["collect_errors", "collect_rows", "short_range_walls", "training_seconds"]


def _load(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def collect_rows(cfg: dict, out: Path) -> list[dict[str, Any]]:
    from gnnff.study.units import md_units, model_units

    rows = []
    models = model_units(cfg)
    evals = {m.id: _load(out / "eval" / f"{m.id}.json") for m in models}
    summaries = {m.id: _load(out / "train" / m.id / "summary.json") for m in models}
    for u in md_units(cfg, models):
        rep = _load(out / "md" / u.model.id / u.id / "report.json")
        if rep is None:
            continue
        ev = evals.get(u.model.id) or {}
        tr = summaries.get(u.model.id) or {}
        row = {
            "family": u.model.family,
            "variant": u.model.variant,
            "seed": u.model.seed,
            "system": u.system,
            "temperature_K": u.temperature,
            "start": u.start,
            "stable_time_ps": rep.get("stable_time_ps"),
            "t_run_ps": rep.get("t_run_ps"),
            "stability_index": rep.get("stability_index"),
            "failed_criterion": rep.get("failed_criterion") or "",
            "failed_pair": (rep.get("failure") or {}).get("pair") or "",
            "status": rep.get("status", ""),
        }
        for name, res in ev.items():
            key = Path(name).stem
            row[f"{key}_energy_mae"] = res.get("energy_mae")
            row[f"{key}_force_mae"] = res.get("force_mae")
            row[f"{key}_lcorr"] = res.get("lcorr")  # residual-stream (basis-dependent)
            row[f"{key}_feature_corr"] = res.get("feature_corr")  # invariant
        row["valid_lcorr"] = tr.get("final_lcorr")
        rows.append(row)
    return rows


def collect_errors(cfg: dict, out: Path) -> list[dict[str, Any]]:
    """The MD units stopped by a software error (their ``error.json``, no report): not runs, so
    in no Stability Index figure; listed so that they are fixed and redone."""
    from gnnff.study.units import ERROR_FILE, md_units, model_units

    errors = []
    for u in md_units(cfg, model_units(cfg)):
        folder = out / "md" / u.model.id / u.id
        err = _load(folder / ERROR_FILE)
        if err is not None and not (folder / "report.json").is_file():
            errors.append({"run": f"{u.model.id}/{u.id}", "error": err.get("error", ""),
                           "during": err.get("during", "")})  # fmt: skip
    return errors


def short_range_walls(out: Path, model_id: str) -> dict[str, float] | None:
    """Isolated-dimer wall E(0.75 d_min) - E(d_min) (eV) per species pair of a trained model,
    d_min from the study's training-data reference; cached beside the model's evaluation."""
    cached = out / "eval" / f"{model_id}.dimer.json"
    model = out / "train" / model_id / "model.pt"
    refs = sorted((out / "md" / "references").glob("*.json"))
    if not model.is_file() or not refs:
        return None
    stamp = model.stat().st_mtime_ns  # a retrained model invalidates the cache
    if cached.is_file():
        data = json.loads(cached.read_text())
        if data.get("model_mtime_ns") == stamp:
            return data["wall_eV"]
    from gnnff.calculators import GNNFFCalculator
    from gnnff.calculators.dimer import dimer_curves, wall_heights

    try:
        pair_min = json.loads(refs[0].read_text())["pair_min_distances"]
        calc = GNNFFCalculator(model, dtype="float64")
        r = np.linspace(0.5, calc.cutoff, 91)
        walls = wall_heights(dimer_curves(calc, calc.species, r), r, pair_min)
    except Exception as exc:  # a diagnostic must never stop the summary
        print(f"warning: short-range walls of {model_id} not computed: {exc}")
        return None
    walls = {k: v for k, v in walls.items() if np.isfinite(v)}
    atomic_write_text(cached, json.dumps({"model_mtime_ns": stamp, "wall_eV": walls}))
    return walls


def training_seconds(out: Path, model_id: str) -> float | None:
    path = out / "train" / model_id / "metrics.csv"
    if not path.is_file():
        return None
    with open(path) as fh:
        secs = [float(r["epoch_seconds"]) for r in csv.DictReader(fh) if r.get("epoch_seconds")]
    return statistics.median(secs) if secs else None
