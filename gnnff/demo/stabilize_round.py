"""The demo's step 3: one round of ``gnnff stabilize`` from the bundled baseline on the quick data,
exploring the very start where the baseline failed."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .runs import START_FILE, START_INDEX, Row

FINETUNE_EPOCHS = 3


@dataclass
class RoundResult:
    """What one round did: the baseline's exploration, the frames labelled by Tersoff, and the
    fine-tuned model's exploration of the same start (``after`` is None if round 1 converged)."""

    before: Row
    frames_labelled: int
    after: Row | None
    model: Path
    seconds: float
    report: Path


def _row(label: str, rdir: Path, run: dict) -> Row:
    return Row(
        label,
        "ASE (loop)",
        float(run["stable_time_ps"]),
        float(run["stability_index"]),
        run.get("failed_criterion") or None,
        rdir / "explore" / "run_00",
    )


def stabilize_round(
    out: Path, data: Path, model: Path, temperature: float, time_ps: float, seed: int
) -> RoundResult:
    """Run explore -> select failure frames -> label (Tersoff) -> fine-tune -> explore again, once,
    in ``out/stabilize``; the exploration is the demo's start at ``temperature`` for ``time_ps``
    (ASE, same seed). Raises what :class:`gnnff.active.loop.StabilizeLoop` raises."""
    import yaml

    from gnnff.active.config import validate
    from gnnff.active.loop import StabilizeLoop

    work = out / "stabilize"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    train = {
        "data": {"train": str(data / "train.extxyz"), "valid": str(data / "valid.extxyz")},
        "model": {},
        "training": {"batch_size": 4, "seed": seed, "progress": False},
    }
    (work / "train.yaml").write_text(yaml.safe_dump(train))
    start = {
        "structure": str(data / START_FILE),
        "index": START_INDEX,
        "temperature": temperature,
        "seed": seed,
    }
    cfg = validate(
        {
            "train_config": "train.yaml",
            "initial_model": str(model),
            "reference": {"preset": "sio2-tersoff"},
            "explore": {"time_ps": time_ps, "check_interval": 10, "runs": [start]},
            "select": {"failure_frames": 5, "max_frames_per_round": 12},
            "retrain": {"mode": "finetune", "epochs": FINETUNE_EPOCHS, "lr": 5e-4},
            "max_rounds": 1,
            "seed": seed,
        },
        work,
    )
    t0 = time.perf_counter()
    run_dir = work / "run"
    summary = StabilizeLoop(cfg, run_dir, log=lambda m: None).run()
    rounds = summary["rounds"]
    before = _row("baseline", run_dir / "round_001", rounds[0]["runs"][0])
    after = None
    if len(rounds) > 1:
        after = _row("baseline + 1 round", run_dir / "round_002", rounds[1]["runs"][0])
    return RoundResult(
        before,
        int(rounds[0]["frames_added"]),
        after,
        Path(summary["final_model"]),
        time.perf_counter() - t0,
        run_dir / "stabilize.md",
    )
