"""One MD run of the stability study (a unit of work): the model on a start structure with the
stability monitor. A model that fails is a failed run (its report enters the statistics); a
software error is not a run: it is recorded in ``error.json``, left out of the Stability Index
statistics and reported (:func:`gnnff.study.summary.collect_errors`)."""

from __future__ import annotations

import json
from pathlib import Path

from gnnff.errors import GNNFFError
from gnnff.io_utils import atomic_write_json
from gnnff.study.units import ERROR_FILE, MDUnit

__all__ = ["StudyRunError", "is_software_error", "md_unit", "system_file", "system_name"]

# exception classes that are bugs or set-up errors wherever they are raised, never a model's
# instability (a diverging model gives NaN, overlapping atoms, exploding neighbour lists)
_SOFTWARE_ERRORS = (
    TypeError, AttributeError, NameError, ImportError, KeyError, IndexError, AssertionError,
    NotImplementedError, OSError,
)  # fmt: skip


class StudyRunError(GNNFFError, RuntimeError):
    """An MD unit stopped by a software error (recorded in its ``error.json``, left out of the
    Stability Index statistics, retried when the study is run again)."""


def is_software_error(exc: BaseException, started: bool) -> bool:
    """Whether ``exc`` from an MD run is a software error rather than the model failing: raised
    before the first MD step (the start structure and set-up are the study's, so the model has
    not moved an atom yet), or of a class that is a bug wherever it is raised."""
    return not started or isinstance(exc, _SOFTWARE_ERRORS)


def set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, int(threads)))


def system_file(
    cfg: dict, template: str | None, temperature: float, start: int | None = None
) -> Path | None:
    """The file of ``template`` ({T}: temperature; {start}: start index, for starts taken from
    independent melt-quench runs, one file each) or None when it does not exist."""
    if not template:
        return None
    path = Path(cfg["data"]["dir"]) / system_name(template, temperature, start)
    return path if path.is_file() else None


def system_name(template: str, temperature: float, start: int | None = None) -> str:
    """``template`` with {T} (temperature, K) and {start} (start index) filled in."""
    name = template.replace("{T}", f"{temperature:g}")
    return name if start is None else name.replace("{start}", str(start))


def md_unit(cfg: dict, unit: MDUnit, model_path: str, out_dir: str) -> dict:
    """One MD run with the stability monitor; returns its report."""
    import ase.io
    import numpy as np

    from gnnff.calculators import GNNFFCalculator
    from gnnff.calculators.md import MDSettings, run_md
    from gnnff.stability import StabilityConfig, StabilityReference

    set_threads(cfg["threads"])
    out = Path(out_dir)
    done = out / "report.json"
    if done.is_file():
        report = json.loads(done.read_text())
        if report.get("status") in ("completed", "failed"):
            return report
    (out / ERROR_FILE).unlink(missing_ok=True)  # an earlier software error: retried now
    md = cfg["md"]
    spec = md["systems"][unit.system]
    independent = "{start}" in spec["starts"]
    starts_file = system_file(
        cfg, spec["starts"], unit.temperature, unit.start if independent else None
    )
    if starts_file is None:
        raise FileNotFoundError(
            f"starting structures for {unit.system} at "
            f"{unit.temperature:g} K not found ({spec['starts']})"
        )
    frames = ase.io.read(starts_file, index=":")
    if independent:  # one melt-quench run per start: its last frame
        atoms = frames[-1]
    else:  # frames of one trajectory, evenly spaced
        picks = np.linspace(0, len(frames) - 1, int(md["n_starts"])).round().astype(int)
        atoms = frames[int(picks[unit.start])]
    atoms.calc = None
    ref_file = system_file(cfg, spec.get("reference"), unit.temperature)
    scfg = StabilityConfig.from_dict(dict(md.get("stability") or {}))
    # one reference per state point, shared by every model's runs (built once, then cached)
    cached = out.parents[1] / "references" / f"{unit.system}_{unit.temperature:g}K.json"
    if cached.is_file():
        reference = StabilityReference.load(cached)
    else:
        train = ase.io.read(Path(cfg["data"]["dir"]) / "train.extxyz", index=":")
        rdf_frames = ase.io.read(ref_file, index=":") if ref_file else None
        reference = StabilityReference.from_frames(
            train,
            rdf_rmax=scfg.rdf_rmax,
            nbins=scfg.rdf_nbins,
            rdf_frames=rdf_frames,
            with_rdf=rdf_frames is not None,
        )
        cached.parent.mkdir(parents=True, exist_ok=True)
        reference.save(cached)
    settings = MDSettings(
        ensemble="nvt",
        temperature=unit.temperature,
        time_ps=md["time_ps"],
        dt_fs=md["dt_fs"],
        thermostat=md["thermostat"],
        tau_fs=md["tau_fs"],
        seed=1000 * unit.model.seed + 17 * unit.start + int(unit.temperature),
        traj_interval=max(1, int(round(50 / md["dt_fs"]))),
        check_interval=scfg.interval,
    )
    settings.validate()  # a settings error is the config's fault, not an unstable run
    try:
        calc = GNNFFCalculator(model_path, dtype=md["dtype"])
        return run_md(
            atoms, calc, settings, out, stability_config=scfg, reference=reference, progress=False
        )
    except Exception as exc:  # a model that produces garbage (e.g. NaN) is a failed run
        from gnnff.stability import StabilityTracker

        # run_md writes run.json once the dynamics have begun (steps_done)
        run_info = (
            json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
        )
        started = int(run_info.get("steps_done", 0)) > 0
        if is_software_error(exc, started):
            _record_software_error(out, unit, exc, started)

        report = json.loads(done.read_text()) if done.is_file() else None
        if report is None:
            out.mkdir(parents=True, exist_ok=True)
            tracker = StabilityTracker(
                scfg, reference, "nvt", unit.temperature, md["time_ps"], len(atoms)
            )
            tracker.record_failure("exception", 0, 0.0, detail=str(exc))
            report = tracker.write(out)
        report["exception"] = f"{type(exc).__name__}: {exc}"
        atomic_write_json(done, report)
        return report


def _record_software_error(out: Path, unit: MDUnit, exc: Exception, started: bool) -> None:
    """Write ``error.json`` for an MD unit (no report: the run never happened as a run) and
    raise :class:`StudyRunError` naming it."""
    import traceback

    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").unlink(missing_ok=True)
    error = f"{type(exc).__name__}: {exc}"
    atomic_write_json(
        out / ERROR_FILE,
        {
            "unit": unit.id,
            "error": error,
            "during": "the run" if started else "set-up, before the first MD step",
            "traceback": traceback.format_exception(exc),
        },
    )
    raise StudyRunError(
        f"software error in MD run {unit.id} ({error}); recorded in {out / ERROR_FILE}, left "
        "out of the Stability Index statistics. Fix it and run the study again to redo the run"
    ) from exc
