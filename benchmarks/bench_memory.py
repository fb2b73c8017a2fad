"""Peak memory per atom of one energy+forces+stress call of the ASE calculator.

    python benchmarks/bench_memory.py [--quick] [--reps 1 4 8]

Each measurement runs in a fresh process: build the cell (a 1536-atom random SiO2 packing at
2.2 g/cm^3, repeated ``rep`` times along x), load the model (an untrained allegro model in the
default 'small' config, cutoff 5 A, exported in the dtype), read the resident set size, make one
calculator call (energy, forces, stress), read the peak resident set size (``VmHWM``). Rows: atoms,
edges, dtype, edge-block setting (``max_block_edges``, 0 = one pass), peak increase in MB, kB
per atom and per edge. Memory does not depend on how busy
the machine is, so no samples are dropped.

``--lammps 1 2``: the same cells through ``pair_style gnnff`` on 1 and 2 MPI ranks (``run 0``:
energy, forces, virial), ``pair_style gnnff max_block_edges N`` for the edge-block settings;
each rank's peak resident set increase during the run (``VmHWM`` - ``VmRSS`` before it), the
largest rank's, and kB per atom of the whole system over all ranks. The nequip-allegro
comparison is not measured here yet.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE_ATOMS = 1536
DTYPES = ("float32", "float64")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _child(rep: int, dtype: str, model: str, block: int) -> dict:
    import tempfile

    import torch

    sys.path.insert(0, str(HERE))
    sys.path.insert(1, str(HERE.parent))
    from fixtures import export_untrained, sio2_cell

    from gnnff.calculators import GNNFFCalculator

    torch.set_num_threads(2)
    atoms = sio2_cell(BASE_ATOMS).repeat((rep, 1, 1))
    if model == "untrained":
        with tempfile.TemporaryDirectory() as tmp:
            calc = GNNFFCalculator(
                export_untrained(Path(tmp) / "m.pt", "allegro", dtype), max_block_edges=block
            )
    else:
        calc = GNNFFCalculator(model, dtype=dtype, max_block_edges=block)
    atoms.calc = calc
    edges = calc.model_inputs(atoms)["edge_index"].shape[1]
    before = _status_kb("VmRSS")
    atoms.get_potential_energy()
    atoms.get_forces()
    atoms.get_stress()
    peak = _status_kb("VmHWM")
    mb = (peak - before) / 1024.0
    return {
        "model": model,
        "block_edges": block,
        "atoms": len(atoms),
        "edges": int(edges),
        "dtype": dtype,
        "peak_MB": mb,
        "kB_per_atom": (peak - before) / len(atoms),
        "B_per_edge": 1024 * (peak - before) / max(edges, 1),
    }


def _lammps_child(spec: dict) -> None:
    """Body of each MPI rank; rank 0 prints one JSON line."""
    from mpi4py import MPI

    from gnnff.lammps.library import new_lammps

    comm = MPI.COMM_WORLD
    lmp = new_lammps(comm=comm)
    lmp.command(f"plugin load {spec['plugin']}")
    style = "pair_style gnnff" + (f" max_block_edges {spec['block']}" if spec["block"] else "")
    for line in ["units metal", "atom_style atomic", "boundary p p p", "newton on",
                 f"read_data {spec['data']}", style,
                 f"pair_coeff * * {spec['model']} {' '.join(spec['species'])}",
                 "thermo_style custom step pe press"]:  # fmt: skip
        lmp.command(line)
    before = _status_kb("VmRSS")
    lmp.command("run 0")
    per_rank = comm.gather(_status_kb("VmHWM") - before)
    natoms = int(lmp.get_natoms())
    lmp.close()
    if comm.Get_rank() == 0:
        print(json.dumps({"natoms": natoms, "per_rank_kB": per_rank}), flush=True)


def _measure_lammps(rep: int, dtype: str, model: str, block: int, nprocs: int) -> dict:
    import os
    import tempfile

    sys.path.insert(0, str(HERE))
    sys.path.insert(1, str(HERE.parent))
    from fixtures import export_untrained, sio2_cell

    from gnnff.calculators import GNNFFCalculator
    from gnnff.lammps.build import build_plugin
    from gnnff.lammps.geometry import write_lammps_data
    from gnnff.potentials import read_metadata
    from gnnff.potentials.bundled import model_file

    with tempfile.TemporaryDirectory() as tmp:
        path = (
            export_untrained(Path(tmp) / "m.pt", "allegro", dtype)
            if model == "untrained"
            else model_file(model)
        )
        species = list(read_metadata(path)["species"])
        atoms = sio2_cell(BASE_ATOMS).repeat((rep, 1, 1))
        edges = GNNFFCalculator(path).model_inputs(atoms)["edge_index"].shape[1]
        data = write_lammps_data(atoms, Path(tmp) / "cell.data", species)
        spec = {"plugin": str(build_plugin(quiet=True)), "data": str(data), "model": str(path),
                "species": species, "block": block}  # fmt: skip
        mpirun = Path(sys.executable).parent / "mpirun"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}
        out = subprocess.run(
            [str(mpirun), "-np", str(nprocs), sys.executable, __file__, "--lammps-child",
             json.dumps(spec)],
            capture_output=True, text=True, env=env, check=True,
        )  # fmt: skip
    res = json.loads(out.stdout.strip().splitlines()[-1])
    per_rank = res["per_rank_kB"]
    row = {
        "engine": f"lammps x{nprocs}",
        "model": model,
        "block_edges": block,
        "atoms": res["natoms"],
        "edges": int(edges),
        "dtype": dtype if model == "untrained" else "model's",
        "peak_MB_largest_rank": max(per_rank) / 1024.0,
        "peak_MB_all_ranks": sum(per_rank) / 1024.0,
        "kB_per_atom": sum(per_rank) / res["natoms"],
    }
    print(row, flush=True)
    return row


def run(
    quick: bool = False,
    reps: tuple[int, ...] = (1, 4),
    models: tuple[str, ...] = ("untrained", "sio2-allegro-decorrelated"),
    blocks: tuple[int, ...] = (0, 20000),
) -> list[dict]:
    """Rows for every model x size x dtype x edge-block setting (0 = one pass)."""
    rows = []
    for model in models:
        for rep in reps[:1] if quick else reps:
            for dtype in DTYPES:
                for block in blocks:
                    rows.append(_measure(rep, dtype, model, block))
    return rows


def _measure(rep: int, dtype: str, model: str, block: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(rep), dtype, model, str(block)],
        capture_output=True,
        text=True,
        check=True,
    )
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(row, flush=True)
    return row


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--reps", type=int, nargs="+", default=[1, 4])
    ap.add_argument(
        "--models",
        nargs="+",
        default=["untrained", "sio2-allegro-decorrelated"],
        help="'untrained' (default small config) and/or model files or bundled names",
    )
    ap.add_argument(
        "--blocks",
        type=int,
        nargs="+",
        default=[0, 20000],
        help="GNNFFCalculator max_block_edges settings (0 = one pass)",
    )
    ap.add_argument(
        "--lammps",
        type=int,
        nargs="+",
        metavar="NP",
        help="measure pair_style gnnff on these MPI rank counts instead of the ASE calculator",
    )
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("--lammps-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        c = args.child
        print(json.dumps(_child(int(c[0]), c[1], c[2], int(c[3]))))
    elif args.lammps_child:
        _lammps_child(json.loads(args.lammps_child))
    elif args.lammps:
        for model in args.models:
            for rep in args.reps[:1] if args.quick else args.reps:
                for nprocs in args.lammps:
                    for block in args.blocks:
                        _measure_lammps(rep, "float32", model, block, nprocs)
    else:
        run(args.quick, tuple(args.reps), tuple(args.models), tuple(args.blocks))
