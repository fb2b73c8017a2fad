"""Peak memory per atom of one energy+forces+stress call: gnnff against nequip-allegro through
each code's ASE calculator, equal hyperparameters (the models of ``bench_vs_nequip.py``: cutoff
5 A, l_max 1, 2 layers, 8 Bessel functions, small = 32 scalar / 8 tensor channels, MLP width
64; random weights, which do not change memory).

    .venv-bench/bin/python benchmarks/bench_memory_vs_nequip.py [--reps 1 8]
        [--dtypes float32] [--calls 6]

Each measurement is a fresh process of the bench environment (``benchmarks/nequip_env.sh``):
build the model and the cell (the 1536-atom amorphous-like SiO2 packing of
``bench_memory.py``, repeated ``rep`` times along x), one warm-up call on a 96-atom cell (so
that one-time allocations of each code are not counted as per-atom memory), then the resident
set size and ``--calls`` energy+forces+stress calls on the big cell (positions jiggled by 1e-3 A
each time, as MD steps would), reading the peak (``VmHWM``) after the first call and after the
last. The peak over all calls is what an MD run needs: an allocator that keeps freed memory
(gnnff's calculator asks glibc to, for speed) holds more after several calls than after one.
Time per call: median of calls 2..N made while other processes used <= 15 % of the machine
(``timing.summarize``). gnnff is measured in one pass (``max_block_edges=0``) and with
``max_block_edges=20000``.
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


def _child(code: str, dtype: str, rep: int, block: int, calls: int) -> dict:
    import numpy as np
    import torch

    sys.path.insert(0, str(HERE))
    sys.path.insert(1, str(ROOT))
    from bench_memory import _status_kb
    from fixtures import sio2_cell
    from timing import others_busy_pct, summarize

    vs = _vs_nequip()
    torch.set_num_threads(vs.THREADS)
    with tempfile.TemporaryDirectory() as tmp:
        if code == "gnnff":
            calc, _, n_params = vs.gnnff_calculator("small", dtype, Path(tmp))
            calc.module.max_block_edges = block
        else:
            calc, n_params = vs.nequip_calculator("small", dtype)
        small = sio2_cell(96, seed=5)
        small.calc = calc
        small.get_stress()
        atoms = sio2_cell(1536).repeat((rep, 1, 1))
        atoms.calc = calc
        base = atoms.get_positions()
        rng = np.random.default_rng(0)
        before = _status_kb("VmRSS")
        first_peak = 0
        samples = []

        def call() -> None:
            atoms.set_positions(base + rng.normal(scale=1e-3, size=base.shape))
            atoms.get_stress()

        for k in range(calls):
            samples.append(others_busy_pct(call))
            if k == 0:
                first_peak = _status_kb("VmHWM")
        peak = _status_kb("VmHWM")
    steady = summarize(samples[1:] or samples)
    return {
        "code": code if not block else f"gnnff, max_block_edges={block}",
        "dtype": dtype,
        "atoms": len(atoms),
        "params": n_params,
        "calls": calls,
        "first_call_peak_MB": (first_peak - before) / 1024.0,
        "peak_MB": (peak - before) / 1024.0,
        "kB_per_atom": (peak - before) / len(atoms),
        "s_per_call": steady["median_s"],
        "quiet_calls": steady["kept"],
        "all_busy": steady["all_busy"],
    }


def measure(reps: list[int], dtypes: list[str], calls: int = 6) -> list[dict]:
    python = sys.executable if _nequip_here() else str(BENCH_PY)
    if not Path(python).exists():
        raise SystemExit(f"no {BENCH_PY}: create it with `bash benchmarks/nequip_env.sh`")
    rows = []
    for rep in reps:
        for dtype in dtypes:
            for code, block in (("gnnff", 0), ("gnnff", 20000), ("nequip", 0)):
                out = subprocess.run(
                    [python, __file__, "--child", code, dtype, str(rep), str(block), str(calls)],
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
    ap.add_argument("--calls", type=int, default=6, help="calls on the big cell (MD steps)")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        c = args.child
        print(json.dumps(_child(c[0], c[1], int(c[2]), int(c[3]), int(c[4]))))
        return 0
    rows = measure(args.reps, args.dtypes, args.calls)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1))
    print(
        "| atoms | dtype | code | first call peak MB | peak over calls MB | kB/atom | s/call |"
        "\n|---|---|---|---|---|---|---|"
    )
    for r in rows:
        print(f"| {r['atoms']} | {r['dtype']} | {r['code']} | {r['first_call_peak_MB']:.0f} | "
              f"{r['peak_MB']:.0f} | {r['kB_per_atom']:.0f} | {r['s_per_call']:.2f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
