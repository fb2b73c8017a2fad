"""pair_style gnnff (C++ plugin) against the ASE calculator on the same model and cells, and
pair_style tersoff (SiO.tersoff), on alpha-quartz SiO2 cells of ~1.3k and ~11.7k atoms.

    python benchmarks/bench_lammps.py [--quick] [--model MODEL.pt] [--dtype float32]
    python benchmarks/bench_lammps.py --overhead [--size 11.7k] [--np 1] [--steps 20]

Default model: an untrained gnnff allegro model (default 'small' config: 2 layers, l_max 1,
32 scalars, 8 tensors, MLP [64]) exported in float32. Figure: atom-steps/s of NVE
velocity-Verlet MD = atoms x steps / wall time, median over repeats after warm-up. LAMMPS runs
`run N pre no post no` on 1 and 2 MPI ranks (torch single-threaded per rank); ASE runs
``VelocityVerlet.run(N)`` with the GNNFFCalculator on 1 and 2 torch threads (the same cores).
Each timed call records how much CPU other processes used meanwhile (this run's own ranks
excluded) and calls above 15 % of the machine are dropped. Derived columns: ``x_2_vs_1``
(2 ranks or threads over 1), ``plugin_x_ase`` (plugin over ASE at equal core count) and
``x_slower_than_tersoff``.

``--overhead``: cost of the stability monitoring (``fix gnnff/stability`` every 10 steps with
records, frames and the failing-frame buffer, as ``gnnff lammps run`` adds it), monitoring on
vs off interleaved in one LAMMPS instance, median of the repeats: overhead_pct = (on - off) /
off x 100, and fix_time_pct = the fix's own timer (time inside its checks, slowest rank) /
run time x 100, which does not suffer from the noise of two separately timed runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO))

from timing import (  # noqa: E402
    busy_columns,
    machine_busy_s,
    others_pct,
    own_cpu_s,
    summarize,
    timed_calls,
)

DATA = REPO / "examples" / "lammps" / "sio2_quartz.data"  # 324 atoms, types 1 O, 2 Si
SIZES = {"1.3k": (2, 2, 1), "11.7k": (3, 3, 4)}
TYPE_SYMBOLS = {1: "O", 2: "Si"}
TIMESTEP_PS = 0.0005
MIN_WARMUP_CALLS = 5  # a TorchScript module needs ~3-4 calls to reach its optimised graph


def _worker(spec: dict) -> None:
    """Body of each MPI rank: set up, warm up, time ``repeats`` runs; rank 0 prints JSON."""
    from mpi4py import MPI

    from gnnff.lammps.library import new_lammps, potential_file

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
                 "velocity all create 300 12345 loop geom", f"timestep {TIMESTEP_PS}",
                 "fix nve all nve", "thermo 0",
                 f"run {max(spec['steps'], MIN_WARMUP_CALLS)}"]:  # fmt: skip
        lmp.command(line)  # the last line is the warm-up (includes setup)
    samples = []
    for _ in range(spec["repeats"]):
        own0, mach0 = own_cpu_s(), machine_busy_s()
        comm.Barrier()
        t0 = time.perf_counter()
        lmp.command(f"run {spec['steps']} pre no post no")
        comm.Barrier()
        dt = time.perf_counter() - t0
        own = comm.allreduce(own_cpu_s() - own0)  # all ranks of this run are "us"
        samples.append((dt, others_pct(machine_busy_s() - mach0, own, dt)))
    natoms = int(lmp.get_natoms())
    lmp.close()
    if comm.Get_rank() == 0:
        print("BENCH " + json.dumps({"natoms": natoms, "samples": samples}), flush=True)


def _overhead_worker(spec: dict) -> None:
    """Monitoring on vs off on the same LAMMPS instance, interleaved (off, on, off, on, ...):
    ``fix gnnff/stability`` as ``gnnff lammps run`` defines it (checks, records, frames,
    failing-frame buffer) every ``interval`` steps. Each timed call is ``run N pre no post no``;
    the fix is added / removed with an untimed ``run 0`` in between."""
    from mpi4py import MPI

    from gnnff.lammps.library import new_lammps

    comm = MPI.COMM_WORLD
    lmp = new_lammps(comm=comm)
    lmp.command(f"plugin load {spec['plugin']}")
    rx, ry, rz = spec["replicate"]
    out = spec["out"]
    for line in ["units metal", "atom_style atomic", "boundary p p p", "newton on",
                 f"read_data {DATA}", f"replicate {rx} {ry} {rz}", "pair_style gnnff",
                 f"pair_coeff * * {spec['model']} O Si",
                 "velocity all create 300 12345 loop geom", f"timestep {TIMESTEP_PS}",
                 "fix nve all nve", "thermo 0", f"run {MIN_WARMUP_CALLS}"]:  # fmt: skip
        lmp.command(line)
    fix = (
        f"fix mon all gnnff/stability {spec['interval']} file {out}/rec.jsonl frames "
        f"{out}/frames.bin failing {out}/failing.extxyz stop no append yes"
    )
    samples: dict[str, list] = {"off": [], "on": []}
    inside: list[float] = []
    for rep in range(spec["repeats"]):
        for mode in ("off", "on"):
            if mode == "on":
                lmp.command(fix)
            elif rep > 0:
                lmp.command("unfix mon")
            lmp.command("run 0 post no")
            own0, mach0 = own_cpu_s(), machine_busy_s()
            comm.Barrier()
            t0 = time.perf_counter()
            lmp.command(f"run {spec['steps']} pre no post no")
            comm.Barrier()
            dt = time.perf_counter() - t0
            own = comm.allreduce(own_cpu_s() - own0)
            samples[mode].append((dt, others_pct(machine_busy_s() - mach0, own, dt)))
            if mode == "on" and comm.Get_rank() == 0:  # the fix's own timer for this run
                last = Path(out, "rec.jsonl").read_text().splitlines()[-1]
                inside.append(json.loads(last)["monitor_s"] / dt)
    natoms = int(lmp.get_natoms())
    lmp.close()
    if comm.Get_rank() == 0:
        print(
            "BENCH " + json.dumps({"natoms": natoms, "samples": samples, "inside": inside}),
            flush=True,
        )


def monitoring_overhead(
    size: str = "11.7k",
    nprocs: int = 1,
    steps: int = 20,
    repeats: int = 5,
    interval: int = 10,
    model: str | None = None,
    dtype: str = "float32",
) -> dict:
    """Cost of the stability monitoring (fix gnnff/stability at ``interval``, as
    ``gnnff lammps run`` sets it up) relative to the MD step: median time of ``run steps``
    with the fix minus without, over the time without (%), interleaved in one LAMMPS run."""
    import statistics

    from fixtures import export_untrained

    from gnnff.lammps.build import build_plugin

    plugin = str(build_plugin(quiet=True))
    with tempfile.TemporaryDirectory() as tmp:
        label = "user model"
        if model is None:
            model = str(export_untrained(Path(tmp) / "allegro.pt", "allegro", dtype))
            label = f"allegro small untrained {dtype}"
        spec = {"replicate": SIZES[size], "steps": steps, "repeats": repeats, "model": model,
                "plugin": plugin, "interval": interval, "out": tmp}  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        mpirun = Path(sys.executable).parent / "mpirun"
        cmd = [str(mpirun), "-np", str(nprocs), sys.executable, __file__, "--overhead-worker",
               json.dumps(spec)]  # fmt: skip
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"overhead worker failed:\n{res.stderr[-3000:]}")
    data = json.loads(line[6:])
    med = {m: statistics.median(dt for dt, _ in data["samples"][m]) for m in ("off", "on")}
    return {"code": "lammps gnnff monitoring", "model": label, "atoms": data["natoms"],
            "ranks": nprocs, "interval": interval, "steps": steps, "repeats": repeats,
            "median_s_off": round(med["off"], 4), "median_s_on": round(med["on"], 4),
            "step_s": round(med["off"] / steps, 4),
            "overhead_pct": round(100.0 * (med["on"] - med["off"]) / med["off"], 2),
            # time inside the fix's checks (its own timer) over the run time: the same figure,
            # free of the noise of comparing two separately timed runs
            "fix_time_pct": round(100.0 * statistics.median(data["inside"]), 3),
            "others_busy_pct_max": round(max(b for m in data["samples"].values()
                                             for _, b in m), 1)}  # fmt: skip


def _lammps(style: str, size: str, nprocs: int, steps: int, repeats: int, model: str,
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
    return {"natoms": res["natoms"], **summarize([tuple(s) for s in res["samples"]])}


def _ase_cell(size: str):
    import ase.io

    atoms = ase.io.read(DATA, format="lammps-data", atom_style="atomic")
    atoms.set_chemical_symbols([TYPE_SYMBOLS[int(t)] for t in atoms.arrays["type"]])
    return atoms.repeat(SIZES[size])


def _ase(model: str, size: str, threads: int, steps: int, repeats: int) -> dict:
    import numpy as np
    import torch
    from ase import units
    from ase.md.verlet import VelocityVerlet

    from gnnff.calculators import GNNFFCalculator

    torch.set_num_threads(threads)
    atoms = _ase_cell(size)
    atoms.calc = GNNFFCalculator(model)
    rng = np.random.default_rng(12345)  # Maxwell-Boltzmann momenta at 300 K
    sigma = np.sqrt(atoms.get_masses()[:, None] * units.kB * 300.0)
    atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * sigma)
    dyn = VelocityVerlet(atoms, timestep=1e3 * TIMESTEP_PS * units.fs)
    res = timed_calls(lambda: dyn.run(steps), repeats, warmup=-(-MIN_WARMUP_CALLS // steps))
    return {"natoms": len(atoms), **res}


def run(quick: bool = False, model: str | None = None, dtype: str = "float32") -> list[dict]:
    """Rows of atom-steps/s: LAMMPS gnnff and tersoff on 1 and 2 ranks, ASE gnnff on 1 and 2
    threads, at each size."""
    from fixtures import export_untrained

    from gnnff.lammps.build import build_plugin

    plugin = str(build_plugin(quiet=True))
    tmp = tempfile.TemporaryDirectory()
    label = "user model"
    if model is None:
        model = str(export_untrained(Path(tmp.name) / "allegro.pt", "allegro", dtype))
        label = f"allegro small untrained {dtype}"
    repeats = 3 if quick else 5
    sizes = ["1.3k"] if quick else list(SIZES)
    rows = []
    try:
        for size in sizes:
            big = size != "1.3k"
            steps = {
                "gnnff": 2 if quick else (3 if big else 10),
                "tersoff": 100 if quick else (40 if big else 300),
                "ase": 2 if quick else (1 if big else 5),
            }
            for par in (1, 2):
                for code in ("lammps gnnff", "lammps tersoff", "ase gnnff"):
                    n = steps[code.split()[-1] if code != "ase gnnff" else "ase"]
                    if code == "ase gnnff":
                        res = _ase(model, size, par, n, repeats)
                    else:
                        res = _lammps(code.split()[1], size, par, n, repeats, model, plugin)
                    rows.append(
                        {
                            "code": code,
                            "model": "SiO.tersoff" if "tersoff" in code else label,
                            "atoms": res["natoms"],
                            "ranks" if code.startswith("lammps") else "threads": par,
                            "steps": n,
                            "median_s": res["median_s"],
                            "atom_steps_per_s": res["natoms"] * n / res["median_s"],
                            **busy_columns(res),
                        }
                    )
    finally:
        tmp.cleanup()
    _derive(rows)
    return rows


def _derive(rows: list[dict]) -> None:
    def par(r):
        return r.get("ranks", r.get("threads"))

    idx = {(r["code"], r["atoms"], par(r)): r["atom_steps_per_s"] for r in rows}
    for r in rows:
        key = (r["code"], r["atoms"])
        if par(r) == 2 and (*key, 1) in idx:
            r["x_2_vs_1"] = round(r["atom_steps_per_s"] / idx[(*key, 1)], 2)
        if r["code"] == "lammps gnnff":
            ase = idx.get(("ase gnnff", r["atoms"], par(r)))
            ters = idx.get(("lammps tersoff", r["atoms"], par(r)))
            if ase:
                r["plugin_x_ase"] = round(r["atom_steps_per_s"] / ase, 2)
            if ters:
                r["x_slower_than_tersoff"] = round(ters / r["atom_steps_per_s"], 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1.3k atoms only, short runs")
    ap.add_argument("--model", help="gnnff model file (default: untrained allegro, small)")
    ap.add_argument(
        "--dtype",
        default="float32",
        choices=("float32", "float64"),
        help="dtype of the default model",
    )
    ap.add_argument(
        "--overhead",
        action="store_true",
        help="only the stability-monitoring overhead (on vs off, interleaved)",
    )
    ap.add_argument(
        "--size", default="11.7k", choices=list(SIZES), help="cell of the --overhead measurement"
    )
    ap.add_argument("--np", type=int, default=1, help="MPI ranks of the --overhead measurement")
    ap.add_argument("--steps", type=int, default=20, help="steps per timed --overhead call")
    ap.add_argument("--repeats", type=int, default=5, help="timed --overhead calls per mode")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--overhead-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        _worker(json.loads(args.worker))
        return
    if args.overhead_worker:
        _overhead_worker(json.loads(args.overhead_worker))
        return
    if args.overhead:
        print(
            json.dumps(
                monitoring_overhead(
                    args.size, args.np, args.steps, args.repeats, model=args.model, dtype=args.dtype
                ),
                indent=1,
            )
        )
        return
    from run_all import format_table

    print(format_table(run(quick=args.quick, model=args.model, dtype=args.dtype)))


if __name__ == "__main__":
    main()
