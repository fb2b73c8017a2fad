"""Run a LAMMPS input under MPI with stability monitoring (``gnnff lammps run``).

The parent process starts ``mpirun -np N python -m gnnff.lammps.driver SPEC.json``. Every rank
creates LAMMPS (mpi4py communicator), defines the variable ``gnnff_monitor`` (the arguments of a
``fix gnnff/stability``) and runs the user's input UNMODIFIED with ``lmp.file()``: LAMMPS itself
executes every line, ``include``, ``jump``/``label`` loop, ``run N upto/start/stop/pre/post/
every``, ``fix halt`` and ``minimize``. At the first run, pair_style gnnff adds
``fix gnnff_monitor all gnnff/stability ...`` (see pair_gnnff.cpp), which checks natively at
the setup of every run (step 0) and every ``interval`` steps, stops on a failure, writes
``failing.extxyz`` and records each check (``stability.jsonl``) and configuration
(``frames.bin``) into RUN_DIR. The fix is the one judge of its criteria; after the input ends,
rank 0 reads its verdict from those records into the shared :class:`StabilityTracker`, judges
the RDF on the frames and writes the report (see :mod:`gnnff.lammps.records`). A criterion a
LAMMPS run cannot judge (a plug-in) is refused before MPI starts
(:func:`gnnff.lammps.fix_verdict.check_lammps_criteria`).
RUN_DIR receives ``report.json``, ``report.png``, ``log.lammps``, ``run.json``, the records and
(on failure) ``failing.extxyz``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gnnff.errors import GNNFFError, UsageError
from gnnff.io_utils import atomic_write_json
from gnnff.lammps.library import FIX_HINT, LammpsUnavailableError, require_lammps_extra
from gnnff.lammps.records import FRAMES_FILE, RECORD_FILE, read_records, replay

MONITOR_VARIABLE = "gnnff_monitor"
OUTPUT_FILES = (RECORD_FILE, FRAMES_FILE, "failing.extxyz", "report.json", "report.png")


class LammpsRunError(GNNFFError, RuntimeError):
    """``mpirun`` ran but the LAMMPS run crashed or aborted; the message names the log file."""


def _load_settings(spec: dict):
    """The stability settings and reference of a run; StabilityConfigError for a criterion
    that a LAMMPS run cannot judge (the same check on every path: before MPI and per rank)."""
    from gnnff.lammps.fix_verdict import check_lammps_criteria
    from gnnff.stability.config import StabilityConfig
    from gnnff.stability.reference import StabilityReference

    config = (StabilityConfig.from_yaml(spec["stability"]) if spec.get("stability")
              else StabilityConfig())  # fmt: skip
    check_lammps_criteria(config)
    ref = spec.get("reference")
    if ref in (None, "model", "none"):
        return config, ref or "model"
    return config, StabilityReference.load(ref)


def worker(spec: dict) -> int:
    """Body of every MPI rank. Returns the exit code (3 on rank 0 after a LAMMPS error)."""
    from mpi4py import MPI

    from gnnff.lammps.library import new_lammps

    comm = MPI.COMM_WORLD
    me = comm.Get_rank()
    out = Path(spec["out"])
    if me == 0:
        for name in OUTPUT_FILES:  # an earlier run's records must not mix with this run's
            (out / name).unlink(missing_ok=True)
    comm.Barrier()
    cmdargs = ["-log", str(out / "log.lammps")]
    for name, value in spec.get("vars", {}).items():
        cmdargs += ["-var", name, str(value)]
    lmp = new_lammps(cmdargs=["-screen", "none", "-nocite", *cmdargs], comm=comm, quiet=False)
    status, message, last_step = "completed", None, None
    t_wall = time.perf_counter()
    try:
        lmp.command(f'variable {MONITOR_VARIABLE} string "{spec["fix_args"]}"')
        lmp.file(spec["input"])
    except Exception as exc:  # LAMMPS errors (lost atoms, bad commands, ...) end the input
        status, message = "lammps-error", str(exc)
        last_step = int(lmp.extract_global("ntimestep"))
        if me == 0:
            print(f"gnnff lammps run: LAMMPS error: {message}", file=sys.stderr)
    finally:
        lmp.close()
    if me != 0:
        return 0
    info: dict[str, Any] = {
        "input": str(spec["input"]), "np": comm.Get_size(), "vars": spec.get("vars", {}),
        "status": status, "wall_s": round(time.perf_counter() - t_wall, 3),
    }  # fmt: skip
    record_path = out / RECORD_FILE
    records = read_records(record_path) if record_path.is_file() else []
    config, reference = _load_settings(spec)
    tracker = replay(records, out / FRAMES_FILE, config, reference,
                     ensemble=spec.get("ensemble"), temperature=spec.get("temperature"),
                     failing_path=out / "failing.extxyz")  # fmt: skip
    if tracker is None and status == "lammps-error":
        info["error"] = message  # LAMMPS stopped the input: its own message says why
    elif tracker is None:
        info["error"] = (
            "no stability records: the input ran no MD with pair_style gnnff "
            "(the monitor starts with the first `run` after pair_style gnnff)"
        )
        info["status"] = "unmonitored"
    else:
        if status == "lammps-error":
            checks = [r for r in records if r.get("event") == "check"]
            t0 = next(r["time_ps"] for r in records if r.get("event") == "start")
            step = last_step if last_step is not None else checks[-1]["step"]
            dt = next(r["dt_ps"] for r in reversed(records) if r.get("event") == "start")
            t_ps = checks[-1]["time_ps"] - t0 + (step - checks[-1]["step"]) * dt
            tracker.record_failure("lammps_error", step, t_ps, message=message)
        rep = tracker.write(out)
        info["stability_index"] = rep.get("stability_index")
        info["report_status"] = rep.get("status")
        info["t_run_ps"] = rep.get("t_run_ps")
        if status == "completed" and rep.get("status") in ("failed", "halted"):
            info["status"] = rep["status"]
    if (out / "failing.extxyz").is_file():
        info["failing_frames"] = str(out / "failing.extxyz")
    atomic_write_json(out / "run.json", info)  # the parent reads it and prints it once
    return 0 if status != "lammps-error" else 3


def _absolute_if_path(value: str) -> str:
    """``value`` made absolute when it names an existing relative path, else unchanged."""
    try:
        p = Path(value)
        return str(p.resolve()) if value and not p.is_absolute() and p.exists() else value
    except OSError:  # e.g. a value too long to be a file name
        return value


def _resolve_variable(value: str) -> str:
    """An existing relative path made absolute; a bundled model's name (or a renamed one's old
    name, with a warning naming the new one) made its file's path; anything else unchanged."""
    from gnnff.potentials.bundled import is_bundled_name, pretrained_path

    value = _absolute_if_path(value)
    if is_bundled_name(value) and not Path(value).exists():
        return str(pretrained_path(value))
    return value


def run_lammps_input(
    input_path: str | os.PathLike,
    out: str | os.PathLike,
    np_: int = 1,
    variables: dict[str, str] | None = None,
    stability: str | os.PathLike | None = None,
    reference: str | os.PathLike | None = None,
    ensemble: str | None = None,
    temperature: float | None = None,
) -> dict:
    """Run a LAMMPS input, unmodified, on ``np_`` MPI ranks with stability monitoring (see the
    module docstring); returns run.json (status: completed, failed, halted or lammps-error).

    ``reference``: a .json / frames file, ``"none"``, or None / ``"model"`` for the
    training-data reference stored in the model file that ``pair_coeff`` names.
    Raises FileNotFoundError, UsageError (bad arguments), MissingExtraError (no `lammps`
    extra), LammpsUnavailableError (no mpirun) or LammpsRunError (a crash), each naming the
    problem and the fix."""
    require_lammps_extra("running LAMMPS")  # every caller: gnnff lammps run, stabilize
    input_path = Path(input_path).resolve()
    if not input_path.is_file():
        raise FileNotFoundError(f"LAMMPS input {input_path} does not exist")
    if np_ < 1:
        raise UsageError(f"--np must be >= 1, got {np_}")
    if temperature is not None and not temperature > 0:
        raise UsageError(
            f"--temperature must be > 0 K (the thermostat's target), got {temperature}"
        )
    if MONITOR_VARIABLE in (variables or {}):
        raise UsageError(
            f"--var {MONITOR_VARIABLE}=... is reserved: gnnff lammps run defines "
            "it (the monitor's settings come from --stability); drop that --var"
        )
    if stability:  # validate before starting MPI and before anything is written
        stability = Path(stability).resolve()
        _load_settings({"stability": str(stability), "reference": "none"})
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder for the run")
    out.mkdir(parents=True, exist_ok=True)
    from gnnff.lammps.build import build_plugin

    build_plugin(quiet=True)
    # LAMMPS runs in the input's folder (so its own relative paths work); paths given here are
    # relative to the caller, so a --var value naming an existing path is made absolute (and
    # one naming a bundled model, e.g. --var model=sio2-allegro-al, becomes its path)
    variables = {k: _resolve_variable(str(v)) for k, v in (variables or {}).items()}
    if reference and str(reference) not in ("model", "none"):
        reference = Path(reference).resolve()
        if reference.suffix != ".json":
            # build the reference here, once, and hand the ranks a JSON file (building it from
            # frames inside an MPI rank hung in testing)
            from gnnff.stability.reference import StabilityReference

            ref_json = out / "stability_reference.json"
            StabilityReference.from_path(reference).save(ref_json)
            reference = ref_json
    from gnnff.lammps.records import fix_arguments

    spec0 = {
        "stability": str(stability) if stability else None,
        "reference": str(reference) if reference else None,
    }
    config, ref_obj = _load_settings(spec0)
    fix_args = fix_arguments(
        config,
        ref_obj,
        out,
        ensemble=ensemble,
        temperature=temperature,
        label=f"gnnff lammps run {input_path.name}",
    )
    spec = {
        "input": str(input_path), "out": str(out), "vars": variables, "fix_args": fix_args,
        "stability": str(stability) if stability else None,
        "reference": str(reference) if reference else None,
        "ensemble": ensemble, "temperature": temperature,
    }  # fmt: skip
    spec_path = out / "driver-spec.json"
    atomic_write_json(spec_path, spec)
    run_json = out / "run.json"
    run_json.unlink(missing_ok=True)  # an earlier run's result must not pass for this one's
    mpirun = Path(sys.executable).parent / "mpirun"
    if not mpirun.exists():
        raise LammpsUnavailableError(
            f"{mpirun} not found: the MPICH wheel's mpirun is needed. Fix: {FIX_HINT}"
        )
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    repo_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = repo_root + os.pathsep + env.get("PYTHONPATH", "")
    from gnnff.lammps.build import plugin_dir

    env["LAMMPS_PLUGIN_PATH"] = plugin_dir() + os.pathsep + env.get("LAMMPS_PLUGIN_PATH", "")
    cmd = [str(mpirun), "-np", str(np_), sys.executable, "-m", "gnnff.lammps.driver",
           str(spec_path)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=str(input_path.parent))
    if not run_json.exists():
        raise LammpsRunError(
            f"the LAMMPS run failed before writing {run_json} (exit {proc.returncode}); "
            f"see {out / 'log.lammps'}. Command: {shlex.join(cmd)}"
        )
    if proc.returncode not in (0, 3):  # 3: a LAMMPS error the worker recorded in run.json
        raise LammpsRunError(
            f"the LAMMPS run exited with code {proc.returncode} (a crash or an MPI abort on "
            f"some rank) after {run_json} was written; see {out / 'log.lammps'}. "
            f"Command: {shlex.join(cmd)}"
        )
    return json.loads(run_json.read_text())


if __name__ == "__main__":
    sys.exit(worker(json.loads(Path(sys.argv[1]).read_text())))
