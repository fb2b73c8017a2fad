"""Peak memory per atom of one energy+forces+stress call: gnnff against nequip-allegro through
each code's ASE calculator, equal hyperparameters (the models of ``bench_vs_nequip.py``: cutoff
5 A, l_max 1, 2 layers, 8 Bessel functions, small = 32 scalar / 8 tensor channels, MLP width
64; random weights, which do not change memory).

    .venv-bench/bin/python benchmarks/bench_memory_vs_nequip.py [--reps 1 8] [--dtypes float32]

Each measurement is a fresh process of the bench environment (``benchmarks/nequip_env.sh``):
build the model and the cell (the 1536-atom amorphous-like SiO2 packing of
``bench_memory.py``, repeated ``rep`` times along x), one warm-up call on a 96-atom cell (so
that one-time allocations of each code are not counted as per-atom memory), then the resident
set size, one call on the big cell, and the peak (``VmHWM``). gnnff is also measured with
``max_block_edges=20000``. Memory does not depend on machine load; no sample is dropped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCH_PY = ROOT / ".venv-bench" / "bin" / "python"


def _vs_nequip():
    spec = importlib.util.spec_from_file_location("bench_vs_nequip", HERE / "bench_vs_nequip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _child(code: str, dtype: str, rep: int, block: int) -> dict:
    import torch

    sys.path.insert(0, str(HERE))
    sys.path.insert(1, str(ROOT))
    from bench_memory import _status_kb
    from fixtures import sio2_cell

    vs = _vs_nequip()
    torch.set_num_threads(vs.THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        if code == "gnnff":
            calc, n_params = vs.gnnff_calculator("small", dtype, Path(tmp))
            if block:
                calc.module.max_block_edges = block
        else:
            calc, n_params = vs.nequip_calculator("small", dtype)
        small = sio2_cell(96, seed=5)
        small.calc = calc
        small.get_stress()
        atoms = sio2_cell(1536).repeat((rep, 1, 1))
        atoms.calc = calc
        before = _status_kb("VmRSS")
        atoms.get_potential_energy()
        atoms.get_forces()
        atoms.get_stress()
        peak = _status_kb("VmHWM")
    return {
        "code": code if not block else f"gnnff, max_block_edges={block}",
        "dtype": dtype,
        "atoms": len(atoms),
        "params": n_params,
        "peak_MB": (peak - before) / 1024.0,
        "kB_per_atom": (peak - before) / len(atoms),
    }


def measure(reps: list[int], dtypes: list[str]) -> list[dict]:
    python = sys.executable if _nequip_here() else str(BENCH_PY)
    if not Path(python).exists():
        raise SystemExit(f"no {BENCH_PY}: create it with `bash benchmarks/nequip_env.sh`")
    rows = []
    for rep in reps:
        for dtype in dtypes:
            for code, block in (("gnnff", 0), ("gnnff", 20000), ("nequip", 0)):
                out = subprocess.run(
                    [python, __file__, "--child", code, dtype, str(rep), str(block)],
                    capture_output=True, text=True, cwd=ROOT,
                )  # fmt: skip
                if out.returncode != 0:
                    raise RuntimeError(f"{code} {dtype} x{rep} failed:\n{out.stderr[-2000:]}")
                row = json.loads(out.stdout.strip().splitlines()[-1])
                print(row, flush=True)
                rows.append(row)
    return rows


def _nequip_here() -> bool:
    return importlib.util.find_spec("nequip") is not None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    ap.add_argument("--out", type=Path, help="write the rows as JSON here")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        c = args.child
        print(json.dumps(_child(c[0], c[1], int(c[2]), int(c[3]))))
        return 0
    rows = measure(args.reps, args.dtypes)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    print("| atoms | dtype | code | peak MB | kB/atom |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['atoms']} | {r['dtype']} | {r['code']} | {r['peak_MB']:.0f} | "
              f"{r['kB_per_atom']:.0f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
