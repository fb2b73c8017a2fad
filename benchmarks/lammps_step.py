"""One LAMMPS MD step of pair_style gnnff taken apart: LAMMPS's own timers (Pair, Neigh, Comm)
and the model call's wall time inside the pair style (``compute pair gnnff``, element 3).
Shared by ``profile_step.py`` and ``bench_lammps_blocks.py``.

:func:`lammps_step_times` starts ``mpirun -np N`` on this file; each rank sets up the cell,
runs every setting on the same positions (energies and forces to compare), then times
``repeats`` rounds of ``steps`` steps per setting (interleaved, each after ``steps`` warm-up
steps); rank 0 prints one ``BENCH {json}`` line: per run, seconds per step of the whole loop
and of each LAMMPS timer section (average over ranks), the model call (average over ranks),
and the machine's load from other processes (``timing.others_pct``).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO))

from timing import machine_busy_s, others_pct, own_cpu_s, summarize  # noqa: E402

TIMESTEP_PS = 0.0005
_SECTION = re.compile(
    r"^(Pair|Neigh|Comm|Output|Modify|Other)\s*\|\s*([0-9.eE+-]+)\s*\|\s*([0-9.eE+-]+)"
)


def _timer_sections(log_text: str) -> list[dict[str, float]]:
    """Per ``run`` in a LAMMPS log: {section: average seconds over ranks}."""
    runs: list[dict[str, float]] = []
    for line in log_text.splitlines():
        if line.startswith("Section |"):
            runs.append({})
            continue
        m = _SECTION.match(line)
        if m and runs:
            runs[-1][m.group(1)] = float(m.group(3))
    return runs


def _pair_style(blocks: int | None) -> str:
    return "pair_style gnnff" + (f" max_block_edges {blocks}" if blocks is not None else "")


def _worker(spec: dict) -> None:
    """Body of each rank: the settings of ``spec["blocks"]`` (``max_block_edges`` values, None
    = option not given) take turns in one LAMMPS instance (the pair style's settings and model
    are reset with each turn, then ``steps`` untimed warm-up steps, then ``steps`` timed)."""
    from mpi4py import MPI

    from gnnff.lammps.library import new_lammps

    comm = MPI.COMM_WORLD
    nprocs = comm.Get_size()
    lmp = new_lammps(comm=comm)
    steps, configs = spec["steps"], spec["blocks"]
    coeff = f"pair_coeff * * {spec['model']} {' '.join(spec['species'])}"
    for line in ["units metal", "atom_style atomic", "boundary p p p", "newton on",
                 f"read_data {spec['data']}", f"plugin load {spec['plugin']}",
                 _pair_style(configs[0]), coeff,
                 "compute pg all pair gnnff", "compute pe all pe",
                 f"fix model_s all ave/time 1 {steps} {steps} c_pg[3]",
                 "velocity all create 300 12345 loop geom", f"timestep {TIMESTEP_PS}",
                 "fix nve all nve", "thermo_style custom step c_pe", f"thermo {steps}",
                 f"log {spec['log']}"]:  # fmt: skip
        lmp.command(line)
    # every setting on the same positions first: energies and forces to compare
    same: list[dict] = []
    for blocks in configs:
        lmp.command(_pair_style(blocks))
        lmp.command(coeff)
        lmp.command("run 0 post no")
        f = np.array(lmp.gather_atoms("f", 1, 3), dtype=float)
        same.append({"energy": lmp.get_thermo("c_pe"), "forces": f})
    ref = same[0]
    diffs = [
        {
            "d_energy": abs(s["energy"] - ref["energy"]),
            "d_forces": float(np.abs(s["forces"] - ref["forces"]).max()),
        }
        for s in same
    ]
    samples: dict[int, list] = {k: [] for k in range(len(configs))}
    model_s: dict[int, list] = {k: [] for k in range(len(configs))}
    for _ in range(spec["repeats"]):
        for k, blocks in enumerate(configs):
            if len(configs) > 1 or not samples[k]:
                lmp.command(_pair_style(blocks))
                lmp.command(coeff)
                lmp.command(f"run {steps} post no")  # warm-up (the module is fresh)
            own0, mach0 = own_cpu_s(), machine_busy_s()
            comm.Barrier()
            t0 = time.perf_counter()
            lmp.command(f"run {steps} pre no post yes")
            comm.Barrier()
            dt = time.perf_counter() - t0
            own = comm.allreduce(own_cpu_s() - own0)
            samples[k].append((dt / steps, others_pct(machine_busy_s() - mach0, own, dt)))
            model_s[k].append(lmp.extract_fix("model_s", 0, 0) / nprocs)  # summed over ranks
    natoms = int(lmp.get_natoms())
    lmp.close()
    if comm.Get_rank() == 0:
        runs = _timer_sections(Path(spec["log"]).read_text())
        timed = [r for r in runs if "Pair" in r][-spec["repeats"] * len(configs) :]
        sections = {k: [{n: v / steps for n, v in timed[i * len(configs) + k].items()}
                        for i in range(spec["repeats"])] for k in range(len(configs))}  # fmt: skip
        print("BENCH " + json.dumps({"natoms": natoms, "samples": samples, "model_s": model_s,
                                     "sections": sections, "same": diffs}), flush=True)  # fmt: skip


def lammps_step_times(
    data: str | Path,
    model: str | Path,
    species: list[str],
    nprocs: int = 1,
    steps: int = 3,
    repeats: int = 3,
    blocks: list[int | None] | None = None,
    plugin: str | None = None,
) -> list[dict]:
    """Median seconds per MD step (velocity Verlet) of ``pair_style gnnff`` with ``model`` on
    the cell of the data file ``data`` (types in ``species`` order), on ``nprocs`` MPI ranks
    (one torch thread each), one row per ``max_block_edges`` setting of ``blocks`` (None: the
    option not given; default ``[None]``), the settings interleaved: ``step_s`` (the whole
    loop), ``pair_s``, ``neigh_s``, ``comm_s`` (LAMMPS timers, average over ranks),
    ``model_s`` (the model call inside the pair style, average over ranks), ``pair_own_s`` =
    pair - model (the plugin's own work: edge list, tensors, forces back), ``d_energy`` (eV)
    and ``d_forces`` (eV/A, max abs) from the first setting on the same positions, and the busy
    columns of ``timing.summarize``."""
    blocks = [None] if blocks is None else list(blocks)
    if plugin is None:
        from gnnff.lammps.build import build_plugin

        plugin = str(build_plugin(quiet=True))
    with tempfile.TemporaryDirectory(prefix="lammps-step-") as tmp:
        spec = {"data": str(data), "model": str(model), "species": list(species),
                "steps": steps, "repeats": repeats, "blocks": blocks, "plugin": plugin,
                "log": str(Path(tmp) / "log.lammps")}  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        mpirun = Path(sys.executable).parent / "mpirun"
        cmd = [str(mpirun), "-np", str(nprocs), sys.executable, __file__, json.dumps(spec)]
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"LAMMPS worker failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    res = json.loads(line[6:])
    med = statistics.median
    rows = []
    for k, b in enumerate(blocks):
        key = str(k)
        row = {
            "natoms": res["natoms"],
            "ranks": nprocs,
            "max_block_edges": b,
            **summarize([tuple(s) for s in res["samples"][key]]),
            **{
                f"{n.lower()}_s": med(r.get(n, 0.0) for r in res["sections"][key])
                for n in ("Pair", "Neigh", "Comm")
            },  # fmt: skip
            "model_s": med(res["model_s"][key]),
            **res["same"][k],
        }
        row["step_s"] = row.pop("median_s")
        row["pair_own_s"] = row["pair_s"] - row["model_s"]
        rows.append(row)
    return rows


if __name__ == "__main__":
    _worker(json.loads(sys.argv[1]))
