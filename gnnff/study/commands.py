"""``gnnff study run|summarize``."""

from __future__ import annotations

import argparse


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
