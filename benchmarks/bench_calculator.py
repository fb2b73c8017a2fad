"""ASE calculator throughput and its neighbour-list share (vesin vs ASE's own list).

    python benchmarks/bench_calculator.py [--quick]

``gnnff.calculators.GNNFFCalculator`` computes energy+forces+stress on amorphous-like SiO2
cells (192 and 1536 atoms, 2.2 g/cm^3) with an untrained allegro model (default 'small'
config) exported in float32 and in float64, 2 torch threads; before every call all atoms move
by a fresh random offset (<= 1e-3 A) so nothing is reused. Side by side, interleaved in the
same run on the same cells: the calculator with each dtype (one interleaved group), and
gnnff's neighbour list (``gnnff.potentials.neighbors.neighbor_list``, vesin) with ASE's
(``ase.neighborlist.neighbor_list("ijS", ...)``) (a second group). Rows give ms per call,
atom-steps/s for the calculator, and for the neighbour lists their share of a full calculator
step (with ASE's list: the step with vesin's time swapped for ASE's) and vesin's speed-up.
Samples during which other processes used more than 15 % of the machine are dropped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from fixtures import CUTOFF, export_untrained, jiggle, sio2_cell  # noqa: E402
from timing import busy_columns, timed_side_by_side  # noqa: E402

SIZES = (192, 1536)
DTYPES = ("float32", "float64")
THREADS = 2


def run(quick: bool = False) -> list[dict]:
    """Rows per cell: calculator (each dtype), vesin and ASE neighbour lists."""
    import torch

    from gnnff.calculators import GNNFFCalculator

    torch.set_num_threads(THREADS)
    sizes = SIZES[:1] if quick else SIZES
    repeats, warmup = (5, 4) if quick else (11, 5)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        calcs = {
            dt: GNNFFCalculator(export_untrained(Path(tmp) / f"m-{dt}.pt", "allegro", dt))
            for dt in DTYPES
        }
    for n_atoms in sizes:
        rows += _cell_rows(n_atoms, calcs, repeats, warmup)
    return rows


def _cell_rows(n_atoms: int, calcs: dict, repeats: int, warmup: int) -> list[dict]:
    import numpy as np
    from ase.neighborlist import neighbor_list as ase_neighbor_list

    from gnnff.potentials.neighbors import neighbor_list

    atoms = sio2_cell(n_atoms)
    base = atoms.get_positions()
    rng = np.random.default_rng(1)

    def step(calc) -> None:
        jiggle(atoms, base, rng)
        calc.calculate(atoms, ["energy", "forces", "stress"])

    # Two interleaved groups: ASE's list frees large numpy temporaries, and the allocator's
    # returning them to the OS made the next model call page-fault (~3x slower at 192 atoms).
    res = timed_side_by_side(
        {f"calculator {dt}": (lambda c=c: step(c)) for dt, c in calcs.items()},
        repeats,
        warmup,
        min_sample_s=0.05,
    )
    res.update(
        timed_side_by_side(
            {
                "NL vesin": lambda: neighbor_list(
                    atoms.positions, atoms.cell.array, atoms.pbc, CUTOFF
                ),
                "NL ase": lambda: ase_neighbor_list("ijS", atoms, CUTOFF),
            },
            repeats,
            warmup,
            min_sample_s=0.05,
        )
    )
    n_edges = int(neighbor_list(base, atoms.cell.array, atoms.pbc, CUTOFF)[0].shape[1])
    t = {k: r["median_s"] for k, r in res.items()}
    rows = []
    for k, r in res.items():
        row = {
            "n_atoms": n_atoms,
            "n_edges": n_edges,
            "what": k,
            "median_ms": 1e3 * r["median_s"],
            "min_ms": 1e3 * r["min_s"],
        }
        if k.startswith("calculator"):
            row["atom_steps_per_s"] = n_atoms / r["median_s"]
        else:
            for dt in DTYPES:  # share of the step, the step using this neighbour list
                full = t[f"calculator {dt}"] - t["NL vesin"] + r["median_s"]
                row[f"share_of_{dt}_step"] = r["median_s"] / full
            if k == "NL ase":
                row["vesin_x_faster"] = r["median_s"] / t["NL vesin"]
        rows.append({**row, "calls_per_sample": r["calls_per_sample"], **busy_columns(r)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="192 atoms only, fewer repeats")
    args = parser.parse_args()
    from run_all import format_table

    print(format_table(run(quick=args.quick)))


if __name__ == "__main__":
    main()
