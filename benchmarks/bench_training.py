"""Training-step time with and without the decorrelation loss, side by side.

    python benchmarks/bench_training.py [--quick]

One realistic SiO2 batch (random amorphous-density cells, the default model hyperparameters)
goes through the trainer's own step (forward with create_graph, loss, backward, AdamW step) for
two trainers that differ only in ``decorrelation.enabled``. Steps are interleaved after a
warm-up (``timing.timed_side_by_side``); samples during which other processes used more than
15 % of the machine are dropped; medians are reported with the overhead in %.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from timing import busy_columns, timed_side_by_side  # noqa: E402


def _trainers(tmp: Path, quick: bool):
    import ase.io

    from gnnff.training.config import validate_config
    from gnnff.training.synthetic import make_dataset
    from gnnff.training.trainer import Trainer

    n_formula = 16 if quick else 32  # 48 / 96 atoms per cell
    frames = make_dataset(4, seed=0, n_formula=n_formula)
    ase.io.write(tmp / "train.extxyz", frames)
    ase.io.write(tmp / "valid.extxyz", frames[:1])
    out = {}
    for name, enabled in (("baseline", False), ("decorrelation", True)):
        cfg = validate_config({
            "data": {"train": str(tmp / "train.extxyz"), "valid": str(tmp / "valid.extxyz")},
            "model": {"family": "allegro", "cutoff": 5.0},
            "decorrelation": {"enabled": enabled, "scheduler": "constant", "lambda_max": 0.05},
            "training": {"batch_size": 4, "progress": False},
        })
        out[name] = Trainer(cfg, tmp / name, log=lambda s: None)
    return out, sum(len(f) for f in frames)


def _step(trainer, batch) -> None:
    loss, *_ = trainer.compute_loss(batch, trainer.lambda_now())
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trainer.optimizer.step()


def run(quick: bool = False) -> list[dict]:
    """Median step time (ms) of both variants and the decorrelation overhead (%)."""
    import torch

    from gnnff.training.data import collate

    repeats = 6 if quick else 20
    with tempfile.TemporaryDirectory() as d:
        trainers, n_atoms = _trainers(Path(d), quick)
        batches = {k: collate(t.data["train"], t.dtype) for k, t in trainers.items()}
        n_edges = int(batches["baseline"].edge_index.shape[1])
        fns = {k: (lambda t=t, b=batches[k]: _step(t, b)) for k, t in trainers.items()}
        res = timed_side_by_side(fns, repeats, warmup=2)
    base = res["baseline"]["median_s"]
    return [{"variant": k, "atoms": n_atoms, "edges": n_edges,
             "median_step_ms": 1e3 * r["median_s"], "min_step_ms": 1e3 * r["min_s"],
             "overhead_pct": 100.0 * (r["median_s"] / base - 1.0),
             "threads": torch.get_num_threads(), **busy_columns(r)}
            for k, r in res.items()]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller batch, fewer repetitions")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    args = p.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from run_all import format_table

    print(format_table(run(quick=args.quick)))


if __name__ == "__main__":
    main()
