"""pair_style gnnff on CPU: one pass against edge blocks (``max_block_edges``), side by side.

    python benchmarks/bench_lammps_blocks.py [--atoms 1536 12288] [--ranks 1 2]
        [--blocks 0 5000 20000 80000] [--dtype float32] [--repeats 3] [--json OUT.json]

The untrained allegro model of the benchmarks (default 'small' config, cutoff 5 A, seed 0) on
random SiO2 packings (``benchmarks/fixtures.py``); per size and rank count one LAMMPS run in
which the settings take turns (``benchmarks/lammps_step.py``: each turn resets the pair
style, warms up, then times a few velocity-Verlet steps; medians over ``--repeats`` rounds).
Columns: seconds per MD step, the model call's share, the ratio to one pass (< 1: faster), and
the largest energy / force difference from one pass on the same positions.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from fixtures import SPECIES, build_untrained, sio2_cell  # noqa: E402
from lammps_step import lammps_step_times  # noqa: E402


def run(atoms: list[int], ranks: list[int], blocks: list[int], dtype: str, repeats: int) -> list:
    from gnnff.lammps.build import build_plugin
    from gnnff.lammps.geometry import write_lammps_data
    from gnnff.potentials import export_model

    plugin = str(build_plugin(quiet=True))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-blocks-") as tmp:
        pt = export_model(build_untrained("allegro"), Path(tmp) / f"{dtype}.pt", dtype)
        for n in atoms:
            data = write_lammps_data(sio2_cell(n), Path(tmp) / f"sio2_{n}.data", SPECIES)
            steps = 4 if n < 4000 else 2
            for np_ in ranks:
                res = lammps_step_times(data, pt, SPECIES, np_, steps, repeats, blocks, plugin)
                base = res[0]["step_s"]
                for r in res:
                    r.update(dtype=dtype, steps=steps, x_one_pass=round(r["step_s"] / base, 3))
                    rows.append(r)
                    print(
                        f"{r['natoms']:>6} atoms {np_} rank(s) blocks {r['max_block_edges']:>6}: "
                        f"{r['step_s']:.3f} s/step (model {r['model_s']:.3f}) "
                        f"x{r['x_one_pass']:.3f} of one pass, dE {r['d_energy']:.1e} eV "
                        f"dF {r['d_forces']:.1e} eV/A (others {r['others_pct']} %)",
                        flush=True,
                    )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| atoms | ranks | max_block_edges | s / step | model s | x one pass | dE eV | "
             "max dF eV/A |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['natoms']} | {r['ranks']} | {r['max_block_edges'] or 'one pass'} | "
            f"{r['step_s']:.3f} | {r['model_s']:.3f} | {r['x_one_pass']:.3f} | "
            f"{r['d_energy']:.1e} | {r['d_forces']:.1e} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--atoms", type=int, nargs="+", default=[1536, 12288])
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--blocks", type=int, nargs="+", default=[0, 5000, 20000, 80000])
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    rows = run(args.atoms, args.ranks, args.blocks, args.dtype, args.repeats)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
