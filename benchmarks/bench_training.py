"""Training-step time with and without the decorrelation loss (every variant), side by side.

    python benchmarks/bench_training.py [--quick] [--variants residual,per_pair]

One realistic SiO2 batch (random amorphous-density cells, the default model hyperparameters)
goes through the trainer's own step (forward with create_graph, loss, backward, AdamW step) for
a baseline trainer and one trainer per ``decorrelation.variant`` (default: all of them), which
differ only in the ``decorrelation`` section. Steps are interleaved after a warm-up
(``timing.timed_side_by_side``); samples during which other processes used more than 15 % of
the machine are dropped; medians are reported with the overhead in %, also paired (median of
the per-round ratios to the baseline step of the same round).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from timing import busy_columns, paired_ratio, timed_side_by_side  # noqa: E402


def _trainers(
    tmp: Path,
    quick: bool,
    max_edges: int | str | None = None,
    variants: tuple[str, ...] = ("residual",),
):
    import ase.io

    from gnnff.testing.synthetic import make_dataset
    from gnnff.training.config import validate_config
    from gnnff.training.trainer import Trainer

    n_formula = 16 if quick else 32  # 48 / 96 atoms per cell
    frames = make_dataset(4, seed=0, n_formula=n_formula)
    ase.io.write(tmp / "train.extxyz", frames)
    ase.io.write(tmp / "valid.extxyz", frames[:1])
    out = {}
    for name in ("baseline", *variants):
        enabled = name != "baseline"
        cfg = validate_config(
            {
                "data": {"train": str(tmp / "train.extxyz"), "valid": str(tmp / "valid.extxyz")},
                "model": {"family": "allegro", "cutoff": 5.0},
                "decorrelation": {
                    "enabled": enabled,
                    "scheduler": "constant",
                    "lambda_max": 0.05,
                    "variant": name if enabled else "residual",
                    **({"max_edges": max_edges} if max_edges else {}),
                },
                "training": {"batch_size": 4, "progress": False},
            }
        )
        out[name] = Trainer(cfg, tmp / name, log=lambda s: None)
    return out, sum(len(f) for f in frames)


def _step(trainer, batch) -> None:
    loss, *_ = trainer.compute_loss(batch, trainer.lambda_now())
    trainer.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    trainer.optimizer.step()


def _loss_only(trainer, batch, repeats: int) -> dict:
    """Time of L_corr forward + backward alone on the step's real features (the loss's own
    cost, free of the step-to-step noise of the full step)."""
    import torch

    from gnnff.training.decorrelation import (
        edge_pair_ids,
        resolve_max_edges,
        variant_feature_kind,
        variant_loss,
    )
    from gnnff.training.loss import predict

    variant = trainer.cfg["decorrelation"]["variant"]
    out = predict(
        trainer.model,
        batch,
        forces=False,
        features=True,
        feature_kind=variant_feature_kind(variant),
    )
    feats = [out["features"][k].detach().requires_grad_(True) for k in trainer.corr_layers]
    pairs = edge_pair_ids(batch.species, batch.edge_index, trainer.model.num_species)
    m = resolve_max_edges(trainer.cfg["decorrelation"]["max_edges"], feats)
    gen = torch.Generator().manual_seed(0)

    def fn() -> None:
        loss, _ = variant_loss(variant, feats, pairs, m, gen)
        loss.backward()

    timing = timed_side_by_side({"loss": fn}, repeats * 5, warmup=5)["loss"]
    return {**timing, "max_edges": m}


def run(
    quick: bool = False,
    max_edges: int | str | None = None,
    repeats: int | None = None,
    variants: tuple[str, ...] = ("residual",),
) -> list[dict]:
    """Median step time (ms) of the baseline and of each loss variant, with the overhead (%)."""
    import torch

    from gnnff.training.data import collate

    repeats = repeats or (6 if quick else 40)
    with tempfile.TemporaryDirectory() as d:
        trainers, n_atoms = _trainers(Path(d), quick, max_edges, variants)
        batches = {k: collate(t.data["train"], t.dtype) for k, t in trainers.items()}
        n_edges = int(batches["baseline"].edge_index.shape[1])
        fns = {k: (lambda t=t, b=batches[k]: _step(t, b)) for k, t in trainers.items()}
        res = timed_side_by_side(fns, repeats, warmup=2)
        loss_only = {v: _loss_only(trainers[v], batches[v], repeats) for v in variants}
    base = res["baseline"]["median_s"]
    paired = {k: 100.0 * (paired_ratio(res, k, "baseline") - 1.0) for k in res}
    return [
        {
            "variant": k,
            "atoms": n_atoms,
            "edges": n_edges,
            "median_step_ms": 1e3 * r["median_s"],
            "min_step_ms": 1e3 * r["min_s"],
            "overhead_pct": 100.0 * (r["median_s"] / base - 1.0),
            "paired_overhead_pct": paired[k],
            "loss_fwd_bwd_ms": 1e3 * loss_only[k]["median_s"] if k in loss_only else "-",
            "max_edges": loss_only[k]["max_edges"] if k in loss_only else "-",
            "threads": torch.get_num_threads(),
            **busy_columns(r),
        }
        for k, r in res.items()
    ]


def _max_edges_arg(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'auto', got {text!r}") from None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="smaller batch, fewer repetitions")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument(
        "--max-edges",
        default=None,
        type=_max_edges_arg,
        help="decorrelation.max_edges: an integer or 'auto' (default: the config default)",
    )
    p.add_argument("--repeats", type=int, default=None, help="timed steps per variant")
    p.add_argument(
        "--variants",
        default="residual,post_activation,per_pair,tensor",
        help="comma-separated decorrelation.variant values to time",
    )
    args = p.parse_args()
    from gnnff.training.decorrelation import VARIANTS

    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        p.error(f"--variants: unknown {bad} (valid: {', '.join(VARIANTS)})")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from run_all import format_table

    print(
        format_table(
            run(
                quick=args.quick,
                max_edges=args.max_edges,
                repeats=args.repeats,
                variants=variants,
            )
        )
    )


if __name__ == "__main__":
    main()
