"""``gnnff study run|summarize|status|bundle``."""

from __future__ import annotations

import argparse

from gnnff.errors import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("study", help="the stability study: train, MD, summarise")
    sub = p.add_subparsers(dest="study_command", required=True)
    r = sub.add_parser("run", help="run or continue a study (resumable)")
    r.add_argument("config")
    r.add_argument("--out", required=True)
    r.set_defaults(func=_run)
    s = sub.add_parser("summarize", help="rewrite results.csv/summary.md from a study folder")
    s.add_argument("config")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_summarize)
    t = sub.add_parser("status", help="what is done: models trained (epochs), MD runs finished")
    t.add_argument("config")
    t.add_argument("--out", required=True)
    t.set_defaults(func=_status)
    b = sub.add_parser("bundle", help="ship a trained model in the package (with its figures)")
    b.add_argument("model", help="exported model file (e.g. STUDY/train/<id>/model.pt)")
    b.add_argument("--name", required=True, help="registry name, e.g. sio2-allegro-decorrelated")
    b.add_argument("--data", required=True, help="the data set folder (reference MD, tests)")
    b.add_argument("--time-ps", type=float, default=5.0, help="length of each check run")
    b.add_argument("--starts", type=int, default=2, help="starting structures per system")
    b.add_argument("--temperature", type=float, default=1000.0)
    b.add_argument("--out", default=None, help="folder for the check runs' reports")
    b.add_argument(
        "--heldout",
        default=None,
        help="a finished `gnnff stabilize` evaluation (max_rounds: 0) of this model on held-out "
        "starts: its runs are the stability record (no check runs of its own)",
    )
    b.add_argument(
        "--stabilize",
        default=None,
        help="the `gnnff stabilize` run that made this model: records rounds, frames, CPU time, "
        "and stores its base training set's close-contact reference in the file",
    )
    b.set_defaults(func=_bundle)


def _run(args: argparse.Namespace) -> int:
    from gnnff.study.config import load_study_config
    from gnnff.study.runner import run_study

    cfg = load_study_config(args.config)
    run_study(cfg, args.out)
    print((__import__("pathlib").Path(args.out) / "summary.md").read_text())
    return 0


def _summarize(args: argparse.Namespace) -> int:
    from gnnff.study.config import load_study_config
    from gnnff.study.summary import summarize_study

    cfg = load_study_config(args.config)
    summarize_study(cfg, args.out)
    print((__import__("pathlib").Path(args.out) / "summary.md").read_text())
    return 0


def _status(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gnnff.study.config import load_study_config
    from gnnff.study.runner import study_status

    cfg = load_study_config(args.config)
    if not Path(args.out).is_dir():
        raise FileNotFoundError(
            f"no study folder {args.out}: start it with `gnnff study run "
            f"{args.config} --out {args.out}`"
        )
    st = study_status(Path(args.out), cfg, per_model=True)
    epochs = (cfg["training"].get("set") or {}).get("training.epochs")
    print(f"{'model':34s} {'trained':>8s} {'epochs':>7s} {'MD runs':>9s}")
    for r in st["per_model"]:
        print(
            f"{r['model']:34s} {'yes' if r['trained'] else 'no':>8s} "
            f"{r['epochs_done']:>7d} {r['md_done']:>4d}/{r['md_runs']:<4d}"
        )
    print(
        f"models trained {st['trained']}/{st['models']}"
        + (f" ({epochs} epochs each)" if epochs else "")
        + f", MD runs {st['md_done']}/{st['md_runs']}"
    )
    return 0


def _bundle(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from gnnff.study.bundle import (
        SMALL_TEST,
        bundle_model,
        check_bundle_args,
        stability_check,
        write_small_test_set,
    )
    from gnnff.training.evaluation import evaluate_model_file

    check_bundle_args(args.model, args.name, args.data)
    if not (args.time_ps > 0 and args.starts >= 1 and args.temperature > 0):
        raise UsageError(
            "need --time-ps > 0, --starts >= 1 and --temperature > 0 K "
            f"(got {args.time_ps}, {args.starts}, {args.temperature})"
        )
    data = Path(args.data)
    if not SMALL_TEST.is_file():
        write_small_test_set(data)
    extra, reference = {}, None
    if args.stabilize:
        from gnnff.study.heldout import active_learning_record, base_reference

        extra["active_learning"] = active_learning_record(args.stabilize)
        reference = base_reference(args.stabilize)
    if args.heldout:
        from gnnff.study.heldout import heldout_markdown, heldout_stability

        stab = heldout_stability(args.heldout)
        stab["mean_stability_index"] = stab["overall"]["mean_stability_index"]
        stab["median_stable_ps"] = stab["overall"]["median_stable_ps"]
        print(heldout_markdown(stab))
    else:
        stab = stability_check(
            args.model,
            data,
            Path(args.out or f"bundle_checks/{args.name}"),
            temperature=args.temperature,
            n_starts=args.starts,
            time_ps=args.time_ps,
        )
    evaluation = {}
    for split in ("test_id", "ood_SiO1.55", "ood_SiO1.10"):
        r = evaluate_model_file(args.model, data / f"{split}.extxyz")
        evaluation[split] = {k: r[k] for k in ("energy_mae", "force_mae", "lcorr")}
    path = bundle_model(args.model, args.name, stab, evaluation, extra, reference)
    print(
        json.dumps(
            {
                "bundled": str(path),
                "evaluation": evaluation,
                "mean_stability_index": stab["mean_stability_index"],
                "median_stable_ps": stab["median_stable_ps"],
            },
            indent=2,
        )
    )
    return 0
