"""Bundle the final model of a distillation loop as a pretrained model, with the loop's record
and its measured evaluation in the model file's metadata (issue 25, point 5).

    python benchmarks/bundle_student.py --loop runs/hfo2_sevennet --name hfo2-allegro-sevennet \
        [--evaluation bench_out/teacher_student.json]

Through :func:`gnnff.study.bundle.bundle_model` (the same ``training.bundle`` block as every
bundled model: small-test-set MAE re-measured by a test, evaluation, stability), with:

- ``distillation``: the loop's status, rounds (per round: runs at S = 1 of the exploration,
  frames labelled, CPU seconds per stage), frames labelled in all, the CPU time of the initial
  training and what labelled the data (the reference);
- ``evaluation`` / ``stability`` / ``speed``: what ``benchmarks/bench_teacher_student.py --out``
  measured (accuracy against the teacher per split, the held-out runs, atoms/s), when given;
- the close-contact reference of the loop's base training set (round 0's model), not that of
  the frames the loop added for the very contacts that made runs fail.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _initial_model(loop: Path) -> Path | None:
    """The model a fine-tuning loop started from (its config's ``initial_model``), or None
    for a loop that trained its own round 0."""
    config = json.loads((loop / "config.json").read_text())
    initial = config.get("initial_model")
    return Path(initial) if initial and not (loop / "round_000").exists() else None


def distillation_record(loop: Path) -> dict[str, Any]:
    """The loop's record from its ``summary.json`` (CPU seconds per stage and round). A loop
    that fine-tuned an earlier model (``initial_model``) also carries that model's own
    distillation record as ``previous``, so the bundled file tells its whole history."""
    from gnnff.potentials import read_metadata
    from gnnff.potentials.bundled import neutral_paths

    summary = json.loads((loop / "summary.json").read_text())
    initial = _initial_model(loop)
    previous: dict[str, Any] = {}
    if initial is not None:
        bundle_meta = (read_metadata(initial).get("training") or {}).get("bundle") or {}
        previous = {
            "initial_model": initial.stem,
            "previous": bundle_meta.get("distillation"),
        }
    rounds = []
    for info in summary["rounds"]:
        rows = info.get("runs") or []
        rounds.append(
            {
                "round": info["round"],
                "runs": len(rows),
                "runs_at_S_1": sum(1 for r in rows if r["stability_index"] >= 1.0),
                "frames_added": info.get("frames_added", 0),
                "cpu_s": info.get("cpu_s", {}),
            }
        )
    return {
        "status": summary["status"],
        "rounds": rounds,
        "frames_added_total": summary["frames_added_total"],
        "initial_training_cpu_s": summary["initial_training_cpu_s"],
        "reference": neutral_paths(summary["reference"]),
        **previous,
    }


def bundle(
    loop: Path, name: str, measured: dict[str, Any] | None, model: Path | None = None
) -> Path:
    from gnnff.potentials import read_metadata
    from gnnff.study.bundle import bundle_model

    summary = json.loads((loop / "summary.json").read_text())
    # ``model``: a file derived from the loop's final model (e.g. its energies shifted by
    # benchmarks/composition_offset.py --write) bundled in its place
    model = model or Path(summary["final_model"])
    # the close-contact reference of the base training set: round 0's model, or the model a
    # fine-tuning loop started from
    base_model = _initial_model(loop) or loop / "round_000" / "train" / "model.pt"
    base = read_metadata(base_model)["training"]
    measured = measured or {}
    extra = {"distillation": distillation_record(loop)}
    if "speed" in measured:
        extra["speed"] = measured["speed"]
    if not model.is_absolute():  # as the loop was given it: relative to its working dir
        found = [p for p in (loop.parent / model, loop / model, model) if p.is_file()]
        if not found:
            raise FileNotFoundError(f"the loop's final model {model} is not under {loop}")
        model = found[0]
    return bundle_model(
        model,
        name,
        stability=measured.get("stability"),
        evaluation=measured.get("accuracy"),
        extra=extra,
        stability_reference=base.get("stability_reference"),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loop", required=True, help="gnnff stabilize output folder")
    ap.add_argument("--name", required=True, help="bundled name, e.g. hfo2-allegro-sevennet")
    ap.add_argument("--evaluation", help="JSON of bench_teacher_student.py --out")
    ap.add_argument("--model", help="bundle this file (derived from the final model) instead")
    args = ap.parse_args()
    measured = json.loads(Path(args.evaluation).read_text()) if args.evaluation else None
    model = Path(args.model).resolve() if args.model else None
    print(bundle(Path(args.loop), args.name, measured, model))


if __name__ == "__main__":
    main()
