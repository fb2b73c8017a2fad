"""Whole-model cost of the LUT-softmax backends: allegro-attn energy+forces per call.

    python benchmarks/bench_lut_model.py [--quick]

One untrained allegro-attn model (default 'small' config, same weights for all) is exported
in float64 once per attention softmax backend (float, lut-rexp/lut-2d at 8 and 16 bits:
``set_softmax_backend`` then ``export_model(..., softmax=...)``); each loaded TorchScript
module (``gnnff.potentials.load``) computes energy+forces on the same 192-atom SiO2 cell
(inputs built once). Backends are timed interleaved with 2 torch threads; ``x_float`` is the
ratio of the median time to the float backend's. Samples during which other processes used
more than 15 % of the machine are dropped.
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

BACKENDS: list[tuple[str, int | None]] = [
    ("float", None),
    ("lut-rexp", 8),
    ("lut-2d", 8),
    ("lut-rexp", 16),
    ("lut-2d", 16),
]
N_ATOMS = 192
THREADS = 2


def run(quick: bool = False) -> list[dict]:
    """One row per softmax backend: median ms per energy+forces call and ratio to float."""
    import torch

    from gnnff.calculators import GNNFFCalculator
    from gnnff.potentials import load

    torch.set_num_threads(THREADS)
    repeats, warmup = (4, 3) if quick else (11, 5)
    backends = BACKENDS[:3] if quick else BACKENDS
    atoms = sio2_cell(N_ATOMS)
    fns = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, bits in backends:
            path = export_untrained(
                Path(tmp) / f"{name}-{bits}.pt",
                "allegro-attn",
                "float64",
                softmax={"backend": name, "bits": bits},
            )
            module, meta = load(path)
            if meta["softmax"] != {"backend": name, "bits": bits}:
                raise RuntimeError(f"exported softmax {meta['softmax']} is not {name}/{bits}")
            inp = GNNFFCalculator((module, meta)).model_inputs(atoms)
            args = (inp["pos"], inp["species"], inp["edge_index"], inp["edge_shift"], N_ATOMS)
            fns[(name, bits)] = lambda m=module, a=args: m(*a)["forces"]
    n_edges = int(args[2].shape[1])
    res = timed_side_by_side(fns, repeats, warmup)
    base = res[("float", None)]["median_s"]
    return [
        {
            "model": "allegro-attn small",
            "dtype": "float64",
            "n_atoms": N_ATOMS,
            "n_edges": n_edges,
            "backend": name,
            "bits": bits,
            "median_ms": 1e3 * r["median_s"],
            "min_ms": 1e3 * r["min_s"],
            "x_float": r["median_s"] / base,
            **busy_columns(r),
        }
        for (name, bits), r in res.items()
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="float and the 8-bit LUTs only, fewer repeats"
    )
    args = parser.parse_args()
    from run_all import format_table

    print(format_table(run(quick=args.quick)))


if __name__ == "__main__":
    main()
