"""The ASE calculator's CPU edge-block default (``cpu_block_edges``) against fixed block sizes:
time per call, interleaved in one process, and the memory a call leaves resident, each size in a
fresh process.

    python benchmarks/bench_block_default.py [--out benchmarks/results/block_default.json]

Cases: the untrained 'small' (32 x 8, width 64) and 'medium' (64 x 16, width 128) l_max 1
models of ``bench_vs_nequip.py`` on its amorphous SiO2 cells (1,536 and 12,288 atoms), and the
bundled ``hfo2-allegro-sevennet`` (l_max 2) on its 768- and 6,144-atom crystals. Per case the
blocks are the model's default, 20,000 edges (the former default for every model) and the
other sizes listed. Time: energy + forces + stress through ``GNNFFCalculator`` (neighbour list
included), 2 torch threads, median of the kept samples (``timing.py``) of rounds taken half in
one order and half in the reverse (the first calculator of a round measured a few % slow);
ratio = time / time of the default. Memory: a fresh process loads the model, makes one call
on a 96-atom cell, resets the peak-RSS counter and makes ``--memory-calls`` calls; kB/atom =
(peak RSS - RSS before) / atoms, as ``bench_vs_nequip.py --memory`` measures it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from timing import timed_balanced  # noqa: E402

CASES = {  # name: (model, dtype, atoms, extra block sizes)
    "small f32 1536": ("small", "float32", 1536, (0, 5000)),
    "small f64 1536": ("small", "float64", 1536, (0, 5000)),
    "small f32 12288": ("small", "float32", 12288, (5000,)),
    "small f64 12288": ("small", "float64", 12288, (5000,)),
    "medium f32 1536": ("medium", "float32", 1536, (5000,)),
    "hfo2 student f64 768": ("hfo2-allegro-sevennet", "float64", 768, (5000,)),
    "hfo2 student f64 6144": ("hfo2-allegro-sevennet", "float64", 6144, (5000,)),
}
THREADS = 2


def _setup(model: str, dtype: str, atoms: int, cache: Path):
    """(model file, cell) of a case."""
    if model in ("small", "medium"):
        import bench_vs_nequip as vs

        return vs.gnnff_files(model, dtype, cache)["gnnff"], vs.structure(atoms)
    from bench_teacher_student import crystal_cell

    from gnnff.potentials.bundled import model_file

    size = {96: 0, 768: 1, 6144: 2}[atoms]
    return model_file(model), crystal_cell("hfo2", size)


def _calculator(path, dtype: str, blocks: int | None):
    from gnnff.calculators import GNNFFCalculator

    return GNNFFCalculator(path, dtype=dtype, max_block_edges=blocks)


def _call(calc, atoms, rng):
    a = atoms.copy()
    a.calc = calc
    base = a.get_positions().copy()

    def fn():
        a.set_positions(base + rng.normal(scale=1e-3, size=base.shape))
        a.get_forces()
        a.get_stress()

    return fn


def time_case(name: str, cache: Path, repeats: int) -> list[dict]:
    """Rows of s/call for the default and the fixed block sizes of case ``name``."""
    import torch

    model, dtype, n, extra = CASES[name]
    torch.set_num_threads(THREADS)
    path, atoms = _setup(model, dtype, n, cache)
    default = _calculator(path, dtype, None)
    calcs = {"default": default}
    calcs.update({str(b): _calculator(path, dtype, b) for b in (20000, *extra)})
    rng = np.random.default_rng(0)
    fns = {k: _call(c, atoms, rng) for k, c in calcs.items()}
    res = timed_balanced(fns, repeats)
    ref = res["default"]["median_s"]
    rows = []
    for key, calc in calcs.items():
        rows.append(
            {
                "case": name,
                "blocks": "default" if key == "default" else int(key),
                "max_block_edges": calc.module.max_block_edges,
                "s_per_call": res[key]["median_s"],
                "x_default_time": round(res[key]["median_s"] / ref, 3),
                "kept": res[key]["kept"],
                "others_pct": res[key]["others_pct"],
            }
        )
    return rows


def memory_child(name: str, blocks: str, cache: Path, calls: int) -> dict:
    """kB/atom left resident by ``calls`` calls of case ``name`` with ``blocks``."""
    import torch
    from bench_vs_nequip import _reset_peak_rss, _status_kb, amorphous_sio2

    model, dtype, n, _ = CASES[name]
    torch.set_num_threads(THREADS)
    path, atoms = _setup(model, dtype, n, cache)
    calc = _calculator(path, dtype, None if blocks == "default" else int(blocks))
    rng = np.random.default_rng(0)
    warm = (
        amorphous_sio2(96, seed=5)
        if model in ("small", "medium")
        else _setup(model, dtype, 96, cache)[1]
    )
    _call(calc, warm, rng)()
    fn = _call(calc, atoms, rng)
    before = _status_kb("VmRSS")
    reset = _reset_peak_rss()
    for _ in range(calls):
        fn()
    return {
        "case": name,
        "blocks": blocks,
        "peak_reset": reset,
        "kB_per_atom": round((_status_kb("VmHWM") - before) / n, 1),
    }


def memory_case(name: str, cache: Path, calls: int) -> list[dict]:
    rows = []
    for blocks in ("default", "20000"):
        cmd = [sys.executable, __file__, "--memory-child", name, blocks, str(cache), str(calls)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def main() -> None:
    from run_all import format_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--memory-calls", type=int, default=5)
    ap.add_argument("--cache", type=Path, default=HERE.parent / "bench_out" / "block_default")
    ap.add_argument("--out", type=Path, help="write {timing, memory} as JSON here")
    ap.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        name, blocks, cache, calls = args.memory_child
        print(json.dumps(memory_child(name, blocks, Path(cache), int(calls))))
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    timing, memory = [], []
    for name in args.cases:
        timing += time_case(name, args.cache, args.repeats)
        memory += memory_case(name, args.cache, args.memory_calls)
        print(format_table([r for r in timing if r["case"] == name]), flush=True)
        print(format_table([r for r in memory if r["case"] == name]), flush=True)
    if args.out:
        args.out.write_text(json.dumps({"timing": timing, "memory": memory}, indent=2))


if __name__ == "__main__":
    main()
