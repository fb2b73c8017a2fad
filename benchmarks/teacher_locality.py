"""How much of the teacher's force on an atom comes from atoms farther than a given radius?

    python benchmarks/teacher_locality.py --frames examples/data/hfo2-sevennet/test_id.extxyz \
        --cutoffs 10 --centers 10 --sigma 0.1 \
        --out benchmarks/results/teacher_student/locality_hfo2_10A.json
    python benchmarks/teacher_locality.py --frames examples/data/hfo2-sevennet/test_id.extxyz \
        examples/data/hfo2-sevennet/valid.extxyz --config-type a-HfO2 --cutoffs 10 5 \
        --centers 10 --sigma 0.1 \
        --out benchmarks/results/teacher_student/locality_hfo2_amorphous.json

The teacher (SevenNet-0: 5 message-passing layers of 5 A, a receptive field of 25 A) feels
atoms far away. A strictly-local student whose energy is a sum of terms that see atoms within
r_c has forces that depend on atoms within R = 2 r_c of the atom (the force on i collects the
energy terms of its neighbours j, each of which sees r_c around j): 10 A for gnnff's 5 A
students. For a frame repeated 2 x 2 x 2, the script picks ``--centers`` atoms, displaces every
atom farther than R (``--cutoffs``, minimum image) from the centre by Gaussian noise of
``--sigma`` A per component, and records the change of the teacher's force on the centre. Every
atom within R keeps its place, so no such student can predict that change: half of it (the
change between two independent outside configurations has twice the variance of one) is a
floor on the student's force error for outside motion of that size. Reported per R: mean
|dF component| / sqrt(2) and its RMS / sqrt(2) (meV/A), with a bootstrap interval over
centres, beside the mean |F component| of the centres. The noise stands in for thermal motion
outside the sphere; the floor grows with it (about linearly between 0.05 and 0.1 A here).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def outside_mask(atoms, center: int, cutoff: float) -> np.ndarray:
    """[N] bool: atoms farther than ``cutoff`` (A) from ``center`` (minimum image)."""
    d = atoms.get_distances(center, range(len(atoms)), mic=True)
    return d > cutoff


def select_frames(paths: list[str], config_type: str | None = None) -> list:
    """The frames of ``paths`` in order, only those whose ``config_type`` matches if given.

    Raises SystemExit when nothing is left (a misspelt config type)."""
    from ase.io import read

    frames = [a for path in paths for a in read(path, ":")]
    if config_type:
        frames = [a for a in frames if a.info.get("config_type") == config_type]
    if not frames:
        raise SystemExit(f"no frame of config_type {config_type!r} in {', '.join(paths)}")
    return frames


def summarize(rows: list[dict], cutoffs: list[float], seed: int = 0) -> dict[str, dict]:
    """Per cutoff: the floor's MAE (mean over centres of mean |dF component| / sqrt(2)), a
    bootstrap 95 % interval of it over centres (10,000 resamples), its RMSE and the centres'
    mean |F component|, all in meV/A."""
    rng = np.random.default_rng(seed)
    out = {}
    for rc in cutoffs:
        d = np.array([r["dF"] for r in rows if r["cutoff"] == rc])
        f = np.array([r["F"] for r in rows if r["cutoff"] == rc])
        per = np.abs(d).mean(axis=1) / math.sqrt(2) * 1e3
        boot = [rng.choice(per, len(per)).mean() for _ in range(10_000)]
        out[str(rc)] = {
            "centres": len(d),
            "floor_mae_meV_A": float(per.mean()),
            "floor_mae_ci95": [float(v) for v in np.percentile(boot, [2.5, 97.5])],
            "floor_rmse_meV_A": float(np.sqrt((d**2).mean() / 2) * 1e3),
            "mean_abs_F_component_meV_A": float(np.abs(f).mean() * 1e3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    from gnnff.data.teacher import build_teacher
    from gnnff.io_utils import atomic_write_json

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", required=True, nargs="+", help="files to take the cells from")
    ap.add_argument(
        "--config-type", help="keep only frames whose config_type is this (e.g. a-HfO2)"
    )
    ap.add_argument("--teacher", default="sevennet-0")
    ap.add_argument("--cutoffs", type=float, nargs="+", default=[5.0])
    ap.add_argument("--sigma", type=float, default=0.05, help="outside displacement (A)")
    ap.add_argument("--centers", type=int, default=6, help="centre atoms in all")
    ap.add_argument("--repeat", type=int, default=2, help="cell repetition per axis")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    calc = build_teacher(args.teacher)
    frames = select_frames(args.frames, args.config_type)
    rng = np.random.default_rng(args.seed)
    rows = []
    t0 = time.perf_counter()
    for k in range(args.centers):
        base = frames[k * len(frames) // args.centers].repeat(args.repeat)
        base.calc = calc
        f0 = base.get_forces().copy()
        center = int(rng.integers(len(base)))
        for rc in args.cutoffs:
            moved = base.copy()
            out = outside_mask(base, center, rc)
            moved.positions[out] += rng.normal(0.0, args.sigma, (int(out.sum()), 3))
            moved.calc = calc
            df = moved.get_forces()[center] - f0[center]
            rows.append(
                {
                    "frame": k * len(frames) // args.centers,
                    "center": center,
                    "species": base[center].symbol,
                    "cutoff": rc,
                    "moved": int(out.sum()),
                    "dF": df.tolist(),
                    "F": f0[center].tolist(),
                }
            )
            print(
                f"centre {k + 1}/{args.centers} ({base[center].symbol}) r_c {rc:.1f} A: "
                f"|dF| {np.linalg.norm(df) * 1e3:.0f} meV/A, {out.sum()} atoms moved, "
                f"{time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    summary = summarize(rows, args.cutoffs)
    names = ", ".join(Path(p).name for p in args.frames)
    kind = f" ({args.config_type} only)" if args.config_type else ""
    print(f"\nsigma {args.sigma} A, {args.repeat}^3 cells of {names}{kind}")
    print(
        "| cutoff (A) | centres | floor MAE (meV/A) | 95 % interval | floor RMSE "
        "| mean abs F component |"
    )
    print("|---|---|---|---|---|---|")
    for rc, s in summary.items():
        lo, hi = s["floor_mae_ci95"]
        print(
            f"| {rc} | {s['centres']} | {s['floor_mae_meV_A']:.1f} | {lo:.0f}-{hi:.0f} | "
            f"{s['floor_rmse_meV_A']:.1f} | {s['mean_abs_F_component_meV_A']:.0f} |"
        )
    if args.out:
        record = {
            "frames": [Path(p).name for p in args.frames],
            "config_type": args.config_type,
            "teacher": args.teacher,
            "sigma_A": args.sigma,
            "repeat": args.repeat,
            "summary": summary,
            "rows": rows,
        }
        atomic_write_json(args.out, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
