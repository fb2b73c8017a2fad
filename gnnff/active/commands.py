"""``gnnff stabilize``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "stabilize",
        help="active learning: turn failed MD into training data until runs are stable",
        description="Explore with MD and the stability monitor, label the failure frames with "
        "the reference (a gnnff data preset or any ASE calculator), retrain, repeat until every "
        "exploration run reaches S = 1 or max_rounds. With a bootstrap section it starts from no "
        "model and no data: a preset's structures labelled by the reference (e.g. a "
        "foundation-model teacher) train round 0. Every unit is cached: --resume continues "
        "an interrupted loop. Config schema: gnnff.active.config.",
    )
    p.add_argument("config", help="stabilize config (YAML)")
    p.add_argument("--out", required=True, help="loop folder")
    p.add_argument("--resume", action="store_true", help="continue the loop in --out")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field (YAML value), e.g. --set max_rounds=2 or --set "
        "explore.time_ps=0.5; repeatable. Paths given here are relative to the working "
        "directory (those in the YAML: to its folder)",
    )
    p.add_argument(
        "--format",
        choices=("torchscript", "aoti"),
        default="torchscript",
        help="aoti: also write the final model as an AOTInductor package for CPU (model.pt2 "
        "next to the final model.pt; minutes; docs/model_contract.md) (default: torchscript, "
        "model.pt only)",
    )
    p.set_defaults(func=_stabilize)


def _stabilize(args: argparse.Namespace) -> int:
    from .config import StabilizeConfigError, load
    from .loop import StabilizeError, StabilizeLoop

    try:
        loop = StabilizeLoop(load(args.config, args.overrides), args.out, resume=args.resume)
        summary = loop.run()
    except (StabilizeConfigError, StabilizeError) as exc:
        print(f"gnnff stabilize: error: {exc}", file=sys.stderr)
        return 2
    if args.format == "aoti":
        _write_package(Path(summary["final_model"]))
    last = summary["rounds"][-1]["runs"]
    print(
        json.dumps(
            {
                "status": summary["status"],
                "final_model": summary["final_model"],
                "frames_added": summary["frames_added_total"],
                "last_round_S": [r["stability_index"] for r in last],
            }
        )
    )
    print(f"report: {args.out}/stabilize.md, {args.out}/stabilize.png")
    return 0


def _write_package(source: Path) -> Path:
    """``source`` (a TorchScript model file) as an AOTInductor package for CPU beside it
    (``.pt2``: the same weights, softmax and metadata)."""
    from gnnff.potentials import eager_from_file, export_model, read_metadata

    meta = read_metadata(source)
    target = source.with_suffix(".pt2")
    print(f"compiling {target} (AOTInductor, a few minutes) ...", flush=True)
    return export_model(
        eager_from_file(source), target, meta["dtype"], meta.get("training"), format="aoti"
    )
