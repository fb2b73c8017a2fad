"""The force along the failing pair of close-contact failures, student beside teacher (issue 25).

    python benchmarks/pair_force_at_failure.py RUNS_DIR [--student MODEL] [--teacher sevennet-0]

For every run under ``RUNS_DIR`` (a ``gnnff stabilize`` folder: ``round_*/explore/run_*``, or
one ``gnnff md`` run folder) that a close contact ended: the pair's distance and the force that
separates it, ``(F_j - F_i) . e_ij / 2`` in eV/A (positive: pushes the two atoms apart), from the
student and the teacher, on the first and the last frame of the run's ``failing.extxyz`` (the
snapshots before the failed check and the failing one). A student whose force is far below the
teacher's there has too soft a wall for that pair; the teacher's labels of such frames are what
the loop adds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def separating_force(atoms, i: int, j: int, calc) -> float:
    """(F_j - F_i) . e_ij / 2 (eV/A), e_ij the unit vector from atom i to atom j (minimum image)."""
    vec = atoms.get_distance(i, j, mic=True, vector=True)
    atoms.calc = calc
    forces = atoms.get_forces()
    return float(np.dot(forces[j] - forces[i], vec / np.linalg.norm(vec)) / 2.0)


def failed_runs(root: Path) -> list[Path]:
    """Run folders under ``root`` ended by a close contact that kept their failing frames."""
    folders = (
        [root] if (root / "report.json").is_file() else sorted(root.glob("round_*/explore/run_*"))
    )
    out = []
    for d in folders:
        rep = json.loads((d / "report.json").read_text()) if (d / "report.json").is_file() else {}
        if rep.get("failed_criterion") == "close_contact" and (d / "failing.extxyz").is_file():
            out.append(d)
    return out


def main() -> None:
    import ase.io

    from gnnff.calculators import GNNFFCalculator
    from gnnff.data.teacher import build_teacher
    from gnnff.potentials.bundled import model_file

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", help="a gnnff stabilize output folder or one gnnff md run folder")
    ap.add_argument("--student", default="sio2-allegro-sevennet", help="model file or bundled name")
    ap.add_argument("--teacher", default="sevennet-0")
    ap.add_argument("--out", help="write the rows as JSON here")
    args = ap.parse_args()
    runs = failed_runs(Path(args.runs))
    if not runs:
        raise SystemExit(f"no run ended by a close contact with failing.extxyz under {args.runs}")
    student = GNNFFCalculator(str(model_file(args.student)))
    teacher = build_teacher(args.teacher)
    rows = []
    for d in runs:
        failure = json.loads((d / "report.json").read_text())["failure"]
        i, j = failure["atom_indices"]
        frames = ase.io.read(d / "failing.extxyz", ":")
        for which, atoms in (("first", frames[0]), ("failing", frames[-1])):
            rows.append({
                "run": d.name, "pair": failure.get("pair"), "frame": which,
                "distance_A": round(float(atoms.get_distance(i, j, mic=True)), 3),
                "student_eV_A": round(separating_force(atoms, i, j, student), 2),
                "teacher_eV_A": round(separating_force(atoms, i, j, teacher), 2),
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
