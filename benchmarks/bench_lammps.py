"""pair_style gnnff (C++ plugin, toy many-body TorchScript model by default) against
pair_style tersoff (SiO.tersoff) on the same SiO2 cells, 1 and 2 MPI ranks.

Figure: atom-steps/s = atoms x steps / wall time of a `run N pre no post no` call, median over
repeats after warm-up; each timed call records how much CPU other processes used meanwhile
(``psutil``; this run's own ranks excluded) and calls above 15 % are dropped.

    python benchmarks/bench_lammps.py [--quick] [--model MODEL.pt]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA = REPO / "examples" / "lammps" / "sio2_quartz.data"  # 324 atoms
SIZES = {"1.3k": (2, 2, 1), "11.7k": (3, 3, 4)}
BUSY_PCT = 15.0


def _worker(spec: dict) -> None:
    """Body of each MPI rank: set up, warm up, time `repeats` calls; rank 0 prints JSON."""
    import psutil
    from mpi4py import MPI

    sys.path.insert(0, str(REPO))
    from gnnff.lammps_lib import new_lammps, potential_file

    comm = MPI.COMM_WORLD
    lmp = new_lammps(comm=comm)
    if spec["style"] == "gnnff":
        lmp.command(f"plugin load {spec['plugin']}")
        pair = ["pair_style gnnff", f"pair_coeff * * {spec['model']} O Si"]
    else:
        pair = ["pair_style tersoff", f"pair_coeff * * {potential_file('SiO.tersoff')} O Si"]
    rx, ry, rz = spec["replicate"]
    for line in ["units metal", "atom_style atomic", "boundary p p p", "newton on",
                 f"read_data {DATA}", f"replicate {rx} {ry} {rz}", *pair,
                 "velocity all create 300 12345 loop geom", "timestep 0.0005",
                 "fix nve all nve", "thermo 0", f"run {spec['steps']}"]:  # fmt: skip
        lmp.command(line)  # the last line is the warm-up (includes setup)
    proc = psutil.Process()
    natoms = int(lmp.get_natoms())
    samples = []
    for _ in range(spec["repeats"]):
        c = proc.cpu_times()
        own0 = c.user + c.system
        m = psutil.cpu_times()
        mach0 = m.user + m.system + getattr(m, "nice", 0.0)
        comm.Barrier()
        t0 = time.perf_counter()
        lmp.command(f"run {spec['steps']} pre no post no")
        comm.Barrier()
        dt = time.perf_counter() - t0
        c = proc.cpu_times()
        own = comm.allreduce(c.user + c.system - own0)
        m = psutil.cpu_times()
        mach = m.user + m.system + getattr(m, "nice", 0.0) - mach0
        others = 100.0 * max(0.0, mach - own) / (dt * (psutil.cpu_count() or 1))
        samples.append((dt, others))
    lmp.close()
    if comm.Get_rank() == 0:
        print("BENCH " + json.dumps({"natoms": natoms, "samples": samples}), flush=True)


def _measure(style: str, size: str, nprocs: int, steps: int, repeats: int, model: str,
             plugin: str) -> dict:  # fmt: skip
    spec = {"style": style, "replicate": SIZES[size], "steps": steps, "repeats": repeats,
            "model": model, "plugin": plugin}  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    mpirun = Path(sys.executable).parent / "mpirun"
    cmd = [str(mpirun), "-np", str(nprocs), sys.executable, __file__, "--worker",
           json.dumps(spec)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"benchmark worker failed:\n{out.stderr[-3000:]}")
    res = json.loads(line[6:])
    quiet = [dt for dt, busy in res["samples"] if busy <= BUSY_PCT]
    kept = quiet or [dt for dt, _ in res["samples"]]
    med = statistics.median(kept)
    return {
        "bench": "lammps", "style": style, "atoms": res["natoms"], "ranks": nprocs,
        "steps": steps, "median_s": med,
        "atom_steps_per_s": res["natoms"] * steps / med,
        "kept": len(kept), "dropped_busy": len(res["samples"]) - len(quiet) if quiet else 0,
        "all_busy": not quiet,
        "max_others_pct": round(max(b for _, b in res["samples"]), 1),
    }  # fmt: skip


def run(quick: bool = False, model: str | None = None) -> list[dict]:
    """Rows of atom-steps/s for gnnff and tersoff at both sizes on 1 and 2 ranks."""
    from gnnff.plugin.build import build_plugin

    plugin = str(build_plugin(quiet=True))
    tmp = tempfile.TemporaryDirectory()
    if model is None:
        sys.path.insert(0, str(REPO / "tests"))
        import lammps_fixtures

        model = str(lammps_fixtures.write_toy_model(Path(tmp.name) / "toy.pt"))
    repeats = 3 if quick else 5
    sizes = ["1.3k"] if quick else list(SIZES)
    rows = []
    for size in sizes:
        big = size != "1.3k"
        for nprocs in (1, 2):
            for style, steps in (("gnnff", 6 if big else 40), ("tersoff", 40 if big else 300)):
                row = _measure(style, size, nprocs, steps, repeats, model, plugin)
                rows.append(row)
    for size in sizes:  # speed ratio gnnff / tersoff per (size, ranks)
        for nprocs in (1, 2):
            sel = {r["style"]: r for r in rows
                   if r["ranks"] == nprocs and (r["atoms"] < 5000) == (size == "1.3k")}  # fmt: skip
            if len(sel) == 2:
                sel["gnnff"]["x_slower_than_tersoff"] = round(
                    sel["tersoff"]["atom_steps_per_s"] / sel["gnnff"]["atom_steps_per_s"], 1
                )
    tmp.cleanup()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--model", help="gnnff model file (default: the toy many-body model)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(json.loads(args.worker))
        return
    sys.path.insert(0, str(HERE))
    from run_all import format_table

    print(format_table(run(quick=args.quick, model=args.model)))


if __name__ == "__main__":
    main()
