"""One exploration run of ``gnnff stabilize``: MD of one start under the stability monitor, in
ASE or through LAMMPS. A module-level function of plain arguments, so that
``explore.workers > 1`` can run several at once in separate processes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def explore_run(
    ex: dict[str, Any],
    run: dict[str, Any],
    model: str,
    reference_file: str,
    rund: str,
    failure_frames: int,
    threads: int | None = None,
    committee: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], float]:
    """Run one exploration start; returns (its ``report.json`` content, CPU seconds).

    ``ex`` is the validated ``explore`` section, ``run`` one of its ``runs``; ``reference_file``
    a saved :class:`~gnnff.stability.reference.StabilityReference` (the close-contact distances
    of the base training set). CPU seconds are the process's CPU time for the ASE engine and
    wall time x ranks for LAMMPS (the ranks are other processes). ``threads`` sets torch's
    intra-op threads of a worker process.

    ``committee`` (ASE engine only): ``{"members": [model.pt, ...], "f_lo", "f_hi",
    "interval"}``; the MD is driven by ``model`` exactly as without it, and every ``interval``
    steps a :class:`~gnnff.active.committee.CommitteeObserver` evaluates the members on the
    current frame; its candidates go to ``committee.extxyz`` and its counts to
    ``committee.json`` in ``rund`` (both written when the run ends, so an interrupted run
    leaves neither). Members' force evaluations count in the CPU seconds.
    """
    from gnnff.calculators.md import read_structure

    out = Path(rund)
    out.mkdir(parents=True, exist_ok=True)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    start = read_structure(run["structure"], run["index"])
    if ex["engine"] == "lammps":
        if committee is not None:
            raise ValueError("a committee needs explore.engine ase")
        t0 = time.perf_counter()
        report = _explore_lammps(ex, start, model, run, out, reference_file)
        return report, ex["np"] * (time.perf_counter() - t0)
    from gnnff.calculators import GNNFFCalculator
    from gnnff.calculators.md import MDSettings, run_md
    from gnnff.stability.reference import StabilityReference

    settings = MDSettings(
        ensemble=ex["ensemble"],
        temperature=run["temperature"],
        time_ps=ex["time_ps"],
        dt_fs=ex["dt_fs"],
        thermostat=ex["thermostat"],
        seed=run["seed"],
        traj_interval=10**9,
        check_interval=ex["check_interval"],
        failure_frames=failure_frames,
    )
    t0 = time.process_time()
    observer = None
    if committee is not None:
        from .committee import CommitteeObserver

        observer = CommitteeObserver(
            [GNNFFCalculator(m) for m in committee["members"]],
            committee["f_lo"],
            committee["f_hi"],
            committee["interval"],
            ex["dt_fs"],
            source=str(out),
        )
    report = run_md(
        start,
        GNNFFCalculator(model),
        settings,
        out,
        reference=StabilityReference.load(reference_file),
        progress=False,
        observers=[observer] if observer is not None else (),
    )
    if observer is not None:
        observer.write(out)
    return dict(report), time.process_time() - t0


def _explore_lammps(
    ex: dict[str, Any], start, model: str, run: dict[str, Any], rund: Path, reference_file: str
) -> dict[str, Any]:
    """The bundled NVT input (``gnnff/lammps/templates/in.nvt``) on ``explore.np`` ranks,
    monitored by ``fix gnnff/stability``."""
    from gnnff.lammps.driver import run_lammps_input
    from gnnff.lammps.geometry import write_lammps_data
    from gnnff.potentials import read_metadata

    species = list(read_metadata(model)["species"])
    write_lammps_data(start, rund / "start.data", species)
    (rund / "criteria.yaml").write_text(f"interval: {ex['check_interval']}\n")
    template = Path(__file__).resolve().parents[1] / "lammps" / "templates" / "in.nvt"
    run_lammps_input(
        template, rund, np_=ex["np"], stability=rund / "criteria.yaml",
        reference=Path(reference_file),
        variables={"model": str(model), "data": str(rund / "start.data"),
                   "types": " ".join(species), "temp": str(run["temperature"]),
                   "steps": str(int(round(ex["time_ps"] * 1000.0))),
                   "seed": str(1000 + run["seed"])},
    )  # fmt: skip
    return dict(json.loads((rund / "report.json").read_text()))


def summary_row(k: int, run: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """The line of the round's stability table for run ``k``."""
    failure = report.get("failure") or {}
    return {
        "run": k,
        "structure": Path(run["structure"]).name,
        "index": run["index"],
        "temperature": run["temperature"],
        "seed": run["seed"],
        "stability_index": report["stability_index"],
        "stable_time_ps": report["stable_time_ps"],
        "failed_criterion": report.get("failed_criterion"),
        "failed_pair": failure.get("pair"),
        "threshold": failure.get("threshold"),
    }
