"""TorchScript model file vs AOTInductor package (``.pt2``): time per model call on CPU.

    python benchmarks/bench_aoti.py [--atoms 1536 12288] [--dtypes float32 float64]
                                    [--threads 1] [--repeats 5] [--json OUT.json]

The same untrained allegro model (the default 'small' config, cutoff 5 A, seed 0) is exported
both ways per dtype (the package once per dtype: compiling takes minutes); each cell (a random
SiO2 packing at 2.2 g/cm^3, ``benchmarks/fixtures.py``) gets its neighbour list once, and the
contract's forward (energy, forces, virial, per-atom virial) is timed on those inputs, so the
neighbour list is not in the figures. TorchScript runs one pass (``max_block_edges 0``) and
with the CPU default of the ASE calculator (edge blocks of 20000); a package always runs one
pass. Calls are interleaved (A B C A B C ...) after two warm-up rounds, samples taken while
other processes used > 15 % of the machine are dropped (``benchmarks/timing.py``), and the
median is reported with the ratio to the faster TorchScript setting (< 1: faster), and the
package's largest difference from TorchScript relative to each output's scale (energy, forces,
virial).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from fixtures import CUTOFF, build_untrained, sio2_cell  # noqa: E402
from timing import timed_side_by_side  # noqa: E402


def export_both(folder: Path, dtype: str) -> tuple[Path, Path, float]:
    """(TorchScript file, package, seconds the package took to compile) for ``dtype``."""
    from gnnff.potentials import export_model

    model = build_untrained("allegro")
    pt = export_model(model, folder / f"{dtype}.pt", dtype)
    t0 = time.perf_counter()
    pt2 = export_model(model, folder / f"{dtype}.pt2", dtype, format="aoti")
    return pt, pt2, time.perf_counter() - t0


def bench(n_atoms: int, dtype: str, pt: Path, pt2: Path, repeats: int) -> list[dict]:
    import torch

    from gnnff.calculators.ase_calculator import cpu_block_edges, keep_freed_memory
    from gnnff.potentials import load
    from gnnff.potentials.neighbors import neighbor_list

    keep_freed_memory()
    atoms = sio2_cell(n_atoms)
    edge_index, shift = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, CUTOFF)
    dt = getattr(torch, dtype)
    args = (
        torch.as_tensor(atoms.positions, dtype=dt),
        torch.as_tensor([0 if s == "Si" else 1 for s in atoms.get_chemical_symbols()]),
        torch.as_tensor(edge_index),
        torch.as_tensor(shift, dtype=dt),
        len(atoms),
    )
    script, meta = load(pt)
    package, _ = load(pt2)
    blocked, _ = load(pt)
    script.max_block_edges = 0
    blocks = cpu_block_edges(meta["hyperparameters"], dt)  # the calculator's CPU default
    blocked.max_block_edges = blocks
    fns = {
        "torchscript one pass": lambda: script(*args),
        f"torchscript blocks {blocks}": lambda: blocked(*args),
        "aoti package": lambda: package(*args),
    }
    ref = script(*args)
    got = package(*args)
    diff = max(float((got[k] - ref[k]).abs().max() / ref[k].abs().max().clamp(min=1e-300))
               for k in ("energy", "forces", "virial"))  # fmt: skip
    res = timed_side_by_side(fns, repeats=repeats, warmup=2)
    base = res["torchscript one pass"]["median_s"]
    best_ts = min(base, res[f"torchscript blocks {blocks}"]["median_s"])
    rows = []
    for what, r in res.items():
        if what == "calls_per_sample":
            continue
        rows.append(
            {
                "n_atoms": n_atoms,
                "n_edges": int(edge_index.shape[1]),
                "dtype": dtype,
                "what": what,
                "median_s": round(r["median_s"], 4),
                "min_s": round(r["min_s"], 4),
                "kept": r["kept"],
                "others_pct": r["others_pct"],
                "vs_best_torchscript": round(r["median_s"] / best_ts, 3),
                "max_rel_diff_vs_torchscript": diff if what == "aoti package" else None,
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--atoms", type=int, nargs="+", default=[1536, 12288])
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    rows: list[dict] = []
    compile_s = {}
    with tempfile.TemporaryDirectory(prefix="bench-aoti-") as tmp:
        for dtype in args.dtypes:
            pt, pt2, compile_s[dtype] = export_both(Path(tmp), dtype)
            print(f"{dtype}: package compiled in {compile_s[dtype]:.0f} s", flush=True)
            for n in args.atoms:
                for row in bench(n, dtype, pt, pt2, args.repeats):
                    rows.append(row)
                    print(
                        f"{row['n_atoms']:>6} atoms {row['n_edges']:>8} edges {dtype}  "
                        f"{row['what']:<26} {row['median_s']:8.3f} s  "
                        f"x{row['vs_best_torchscript']:.2f} of the faster TorchScript "
                        f"(kept {row['kept']}, others {row['others_pct']} %)",
                        flush=True,
                    )
    if args.json:
        out = {
            "torch": torch.__version__,
            "threads": args.threads,
            "compile_s": compile_s,
            "rows": rows,
        }
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
