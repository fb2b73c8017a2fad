"""The teacher's own MD on held-out starts, under the same stability monitor as the student
(issue 25, point 6): is SevenNet-0 itself stable where its student is judged?

    python benchmarks/teacher_md.py START.extxyz[@INDEX] --temperature 1500 --time-ps 1 \
        --out bench_out/teacher_md/HfO1.10_1500K [--threads 2] [--seed 22]

NVT (Langevin, 100 fs), 1 fs steps, checks every 10 steps, judged as the distillation loop
judges the student: close contacts against the teacher-labelled training frames of
``examples/data/hfo2-sevennet``, the RDF of each window against the run's own first window
(the training frames mix phases and compositions, so they are no RDF reference for a
glass), so a failure here means the teacher itself left the physics it was judged by.
Writes the usual ``report.json``/``report.png``/``run.json``/``md.traj``; resumable only by
rerunning (a teacher step costs ~1-2 s on one core at ~70 atoms).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
TRAIN = REPO / "examples" / "data" / "hfo2-sevennet" / "train.extxyz"


def main() -> None:
    import ase.io
    import torch

    from gnnff.calculators.md import MDSettings, read_structure, run_md
    from gnnff.data.teacher import build_teacher
    from gnnff.stability.reference import StabilityReference

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("start", help="structure file, FILE@INDEX selects a frame")
    ap.add_argument("--temperature", type=float, required=True)
    ap.add_argument("--time-ps", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reference", default=str(TRAIN), help="frames of the close-contact reference")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path, _, index = args.start.partition("@")
    atoms = read_structure(path, int(index or 0))
    settings = MDSettings(
        ensemble="nvt", temperature=args.temperature, time_ps=args.time_ps, seed=args.seed
    )
    # as the distillation loop judges its runs: close contacts against the teacher-labelled
    # training frames; no RDF from them (a mix of phases and compositions), so the RDF
    # criterion compares each window with the run's own first one
    frames = ase.io.read(args.reference, ":")
    reference = StabilityReference.from_frames(
        frames, with_rdf=False, distance_cutoff=5.0, source=Path(args.reference).name
    )
    report = run_md(atoms, build_teacher("sevennet-0"), settings, args.out, reference=reference)
    print(
        f"teacher: S = {report['stability_index']:.3f}, stable {report['stable_time_ps']:.3g} ps"
        f" ({report.get('failed_criterion') or 'no failure'})"
    )


if __name__ == "__main__":
    main()
