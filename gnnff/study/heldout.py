"""Held-out stability of a model from a ``gnnff stabilize`` evaluation run, and the record of the
active-learning loop that made it: what ``gnnff study bundle --heldout/--stabilize`` stores in a
bundled model's metadata and prints as the README table.

A held-out evaluation is a stabilize run with ``max_rounds: 0`` (it only explores with
``initial_model``) whose starts the loop never explored. Runs are grouped by state point
(composition from the start file's name ``a-<composition>_<T>K.extxyz``, MD temperature); each
group reports its runs, how many reached S = 1, mean S, median stable time, and a 95 % Clopper-
Pearson interval for the fraction with S = 1 (``scipy.stats.binomtest``; exact, so it stays
honest for the few runs per group, e.g. 4 of 4 gives [0.40, 1]).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from gnnff.errors import UsageError


def _composition(structure: str) -> str:
    m = re.match(r"a-(.+?)_\d+K", Path(structure).name)
    return m.group(1) if m else Path(structure).stem


def _fraction_ci(k: int, n: int) -> list[float]:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return [float(ci.low), float(ci.high)]


def _group(rows: list[dict[str, Any]]) -> dict[str, Any]:
    s = np.array([float(r["stability_index"]) for r in rows])
    tau = np.array([float(r["stable_time_ps"]) for r in rows])
    k = int(np.sum(s >= 1.0 - 1e-12))
    return {
        "n_runs": len(rows),
        "n_stable": k,
        "fraction_stable": k / len(rows),
        "fraction_stable_ci95": _fraction_ci(k, len(rows)),
        "mean_stability_index": float(s.mean()),
        "median_stable_ps": float(np.median(tau)),
        "ended_by": sorted({str(r.get("failed_criterion") or "none") for r in rows}),
    }


def heldout_stability(eval_dir: str | Path) -> dict[str, Any]:
    """Summary of a held-out evaluation run (``gnnff stabilize`` with ``max_rounds: 0``).

    Returns settings (time, ensemble, thermostat, model, runs planned and finished),
    ``overall`` and ``by_state`` ({"SiO1.10 1000 K": group}) with the fields of the module
    docstring, over the runs that have finished (an evaluation still running, or stopped, is
    summarised as far as it got, and says so). Raises FileNotFoundError when ``eval_dir`` holds
    no finished run, ValueError when it was a loop that retrained (``max_rounds`` > 0: its
    exploration starts are not held out).
    """
    d = Path(eval_dir)
    cfg_file = d / "config.json"
    explore = d / "round_001" / "explore"
    if not cfg_file.is_file() or not explore.is_dir():
        raise FileNotFoundError(
            f"{d} holds no stabilize evaluation (config.json, round_001/explore); run "
            "`gnnff stabilize EVAL.yaml --out DIR` with max_rounds: 0 first"
        )
    cfg = json.loads(cfg_file.read_text())
    if cfg.get("max_rounds") != 0:
        raise UsageError(
            f"{d} is a stabilize loop with max_rounds {cfg.get('max_rounds')}: a held-out "
            "evaluation only explores (max_rounds: 0) from starts the loop never explored"
        )
    runs = cfg["explore"]["runs"]
    table = []
    for k, run in enumerate(runs):
        done = explore / f"run_{k:02d}" / "done.json"
        if not done.is_file():
            continue  # not finished (yet): counted in runs_planned, not in any statistic
        row = json.loads(done.read_text())
        table.append(
            {
                **row,
                "run": k,
                "composition": _composition(run["structure"]),
                "start": f"{Path(run['structure']).name}@{run['index']}",
            }
        )
    if not table:
        raise FileNotFoundError(f"{d}: no evaluation run has finished yet")
    summary_file = d / "summary.json"
    reference = (
        json.loads(summary_file.read_text()).get("reference")
        if summary_file.is_file()
        else "base training set"
    )
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in table:
        groups.setdefault(f"{row['composition']} {row['temperature']:g} K", []).append(row)
    ex = cfg["explore"]
    return {
        "settings": {
            "model": Path(cfg["initial_model"]).name,
            "time_ps": ex["time_ps"],
            "dt_fs": ex["dt_fs"],
            "ensemble": f"{ex['ensemble']} ({ex['thermostat']})",
            "engine": ex["engine"],
            "check_interval": ex["check_interval"],
            "close_contact_reference": reference,
            "runs_planned": len(runs),
            "runs_finished": len(table),
        },
        "overall": _group(table),
        "by_state": {key: _group(g) for key, g in sorted(groups.items())},
        "runs": table,
    }


def active_learning_record(run_dir: str | Path) -> dict[str, Any]:
    """Rounds, frames added per round, CPU seconds per unit and the stability of each round's
    exploration, from a finished ``gnnff stabilize`` run's ``summary.json``."""
    d = Path(run_dir)
    path = d / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(f"{d} holds no finished stabilize run (summary.json)")
    summary = json.loads(path.read_text())
    rounds = []
    for info in summary["rounds"]:
        s = [float(r["stability_index"]) for r in info["runs"]]
        rounds.append(
            {
                "round": info["round"],
                "runs": len(s),
                "runs_stable": int(sum(x >= 1.0 - 1e-12 for x in s)),
                "mean_stability_index": float(np.mean(s)),
                "frames_added": info["frames_added"],
                "cpu_s": info.get("cpu_s", {}),
            }
        )
    cpu = {}
    for r in rounds:
        for unit, sec in r["cpu_s"].items():
            cpu[unit] = cpu.get(unit, 0.0) + float(sec)
    return {
        "status": summary["status"],
        "retrainings": sum(1 for r in rounds if r["frames_added"] > 0),
        "frames_added_total": summary["frames_added_total"],
        "cpu_s_total": cpu,
        "reference": summary.get("reference"),
        "rounds": rounds,
    }


def heldout_markdown(result: dict[str, Any]) -> str:
    """The README table of :func:`heldout_stability`'s result."""
    st = result["settings"]
    lines = [
        f"{st['model']}: {st['ensemble']}, {st['time_ps']:g} ps at {st['dt_fs']:g} fs "
        f"({st['engine']}); close contacts judged against the {st['close_contact_reference']}; "
        f"{st['runs_finished']} of {st['runs_planned']} runs finished",
        "",
        "| state point | runs | S = 1 | 95 % CI of the S = 1 fraction | mean S | median stable "
        "time | ended by |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = list(result["by_state"].items()) + [("all", result["overall"])]
    for key, g in rows:
        lo, hi = g["fraction_stable_ci95"]
        lines.append(
            f"| {key} | {g['n_runs']} | {g['n_stable']} | {lo:.2f}-{hi:.2f} | "
            f"{g['mean_stability_index']:.3f} | {g['median_stable_ps']:.2f} ps | "
            f"{', '.join(g['ended_by'])} |"
        )
    return "\n".join(lines) + "\n"


def base_reference(run_dir: str | Path) -> dict[str, Any]:
    """The close-contact reference (``StabilityReference.to_dict()``) of the *base* training
    set of the ``gnnff stabilize`` run in ``run_dir``, as the loop judged every round by it."""
    import ase.io

    from gnnff.stability.reference import StabilityReference
    from gnnff.training.config import load_config

    cfg = json.loads((Path(run_dir) / "config.json").read_text())
    tcfg = load_config(cfg["train_config"])
    train = Path(tcfg["data"]["train"])
    ref = StabilityReference.from_frames(
        ase.io.read(train, index=":"),
        with_rdf=False,
        distance_cutoff=float(tcfg["model"].get("cutoff", 5.0)),
        source=f"base training set {train.name} of the active-learning loop",
    )
    return ref.to_dict()
