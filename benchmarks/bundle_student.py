"""Bundle the final model of a distillation loop as a pretrained model, with the loop's record
and its measured evaluation in the model file's metadata (issue 25, point 5).

    python benchmarks/bundle_student.py --loop runs/hfo2_sevennet --name hfo2-allegro-sevennet \
        [--evaluation bench_out/teacher_student.json] [--out gnnff/potentials/pretrained]

The weights are the loop's final model, unchanged. Added to ``metadata.json``:

- ``distillation``: the loop's status, rounds (per round: runs at S = 1 of the exploration,
  frames labelled, CPU seconds per stage), frames labelled in all, the CPU time of the initial
  training and what labelled the data (the reference);
- ``evaluation``: what ``benchmarks/bench_teacher_student.py --out`` measured (accuracy
  against the teacher, speed, held-out stability), when given.

Paths inside the training record are cut to file names, so that no bundled file holds a path
of the machine that made it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _strip_paths(obj: Any) -> Any:
    """Every string that is an absolute path (or a path under a run folder) -> its file name."""
    if isinstance(obj, dict):
        return {k: _strip_paths(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_strip_paths(v) for v in obj]
    if isinstance(obj, str) and ("/" in obj or "\\" in obj) and not obj.startswith("http"):
        return Path(obj).name
    return obj


def distillation_record(loop: Path) -> dict[str, Any]:
    """The loop's record from its ``summary.json`` (CPU seconds per stage and round)."""
    summary = json.loads((loop / "summary.json").read_text())
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
        "reference": _strip_paths(summary["reference"]),
    }


def bundle(loop: Path, name: str, out_dir: Path, evaluation: dict | None) -> Path:
    import torch

    from gnnff.io_utils import atomic_write
    from gnnff.potentials import read_metadata
    from gnnff.potentials.contract import METADATA_FILE

    summary = json.loads((loop / "summary.json").read_text())
    model = Path(summary["final_model"])
    if not model.is_absolute():
        model = loop / model
    meta = read_metadata(model)
    meta["training"] = _strip_paths(meta.get("training"))
    meta["distillation"] = distillation_record(loop)
    if evaluation is not None:
        meta["evaluation"] = evaluation
    module = torch.jit.load(str(model), map_location="cpu")  # type: ignore[no-untyped-call]
    extra = {METADATA_FILE: json.dumps(meta, indent=2)}
    path = out_dir / f"{name}.pt"
    atomic_write(path, lambda p: torch.jit.save(module, str(p), _extra_files=extra))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loop", required=True, help="gnnff stabilize output folder")
    ap.add_argument("--name", required=True, help="bundled name, e.g. hfo2-allegro-sevennet")
    ap.add_argument("--evaluation", help="JSON of bench_teacher_student.py --out")
    ap.add_argument("--out", default=str(HERE.parent / "gnnff" / "potentials" / "pretrained"))
    args = ap.parse_args()
    evaluation = json.loads(Path(args.evaluation).read_text()) if args.evaluation else None
    print(bundle(Path(args.loop), args.name, Path(args.out), evaluation))


if __name__ == "__main__":
    main()
