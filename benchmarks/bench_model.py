"""Energy+forces throughput of exported gnnff models on amorphous-like SiO2 cells.

    python benchmarks/bench_model.py [--quick]

Times the loaded TorchScript module only (inputs, including the neighbour list, are built
once per cell) with 2 torch threads, float32. All models of one cell are timed interleaved
after warm-up (the first ~3 calls of a TorchScript module are slow: profiling executor);
medians of the samples during which other processes used <= 15 % of the machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from fixtures import export_untrained, sio2_cell  # noqa: E402
from timing import busy_columns, timed_side_by_side  # noqa: E402

SIZES = (192, 1536)
CONFIGS: dict[str, dict] = {
    "small": {},  # the defaults: 2 layers, l_max 1, 32 scalars, 8 tensors, MLP [64]
    "medium": {
        "num_layers": 3,
        "l_max": 2,
        "num_scalar": 64,
        "num_tensor": 16,
        "mlp_hidden": [128],
    },
}
FAMILIES = ("allegro", "allegro-attn")


def run(quick: bool = False, threads: int = 2) -> list[dict]:
    """One row per family x config x cell size: median ms per call and atoms/s."""
    import torch

    from gnnff.calculators import GNNFFCalculator
    from gnnff.potentials import load

    torch.set_num_threads(threads)
    sizes = SIZES[:1] if quick else SIZES
    configs = {"small": CONFIGS["small"]} if quick else CONFIGS
    repeats, warmup = (5, 4) if quick else (9, 5)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        models = {
            (fam, size): load(
                export_untrained(Path(tmp) / f"{fam}-{size}.pt", fam, "float32", **over)
            )
            for size, over in configs.items()
            for fam in FAMILIES
        }
        for n_atoms in sizes:
            atoms = sio2_cell(n_atoms)
            fns = {}
            for key, (module, meta) in models.items():
                inp = GNNFFCalculator((module, meta)).model_inputs(atoms)
                args = (inp["pos"], inp["species"], inp["edge_index"], inp["edge_shift"], n_atoms)
                fns[key] = lambda m=module, a=args: m(*a)
            res = timed_side_by_side(fns, repeats, warmup)
            n_edges = int(inp["edge_index"].shape[1])
            for (fam, size), r in res.items():
                rows.append(
                    {
                        "model": f"gnnff-{fam}",
                        "size": size,
                        "n_atoms": n_atoms,
                        "n_edges": n_edges,
                        "dtype": "float32",
                        "threads": threads,
                        "median_ms": 1e3 * r["median_s"],
                        "min_ms": 1e3 * r["min_s"],
                        "atoms_per_s": n_atoms / r["median_s"],
                        **busy_columns(r),
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="192 atoms, small config, fewer repeats"
    )
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from run_all import format_table

    print(format_table(run(quick=args.quick, threads=args.threads)))


if __name__ == "__main__":
    main()
