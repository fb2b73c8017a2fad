"""`gnnff lut ...` subcommands (heavy imports stay inside the command functions).

The emulator stands alone: nothing here imports ``gnnff.potentials``. The ``--model`` part of
``gnnff lut report`` (the report on a model's own attention logits) is supplied by
``gnnff.potentials.lut_commands``, which passes its ``model_section`` to :func:`register`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gnnff.errors import MissingExtraError, UsageError

ModelSection = Callable[[argparse.Namespace], dict[str, Any]]
"""``model_section(args) -> dict``: the report's ``model`` section for ``args.model``,
``args.data`` and ``args.max_frames``."""


def register(subparsers: Any, model_section: ModelSection | None = None) -> None:
    """Add ``lut`` with its subcommands to the top-level ``gnnff`` parser.

    With ``model_section`` given, ``gnnff lut report`` also takes ``--model``/``--data``.
    """
    p = subparsers.add_parser("lut", help="LUT-softmax accelerator emulator: accuracy reports")
    sub = p.add_subparsers(dest="lut_command", metavar="{report}")
    sub.required = True
    r = sub.add_parser(
        "report",
        help="table sizes and errors (max/mean abs, KL) of the LUT softmax vs float softmax",
    )
    r.add_argument(
        "--bits",
        type=int,
        nargs="+",
        choices=(8, 16),
        default=[8, 16],
        help="bit widths to report (default: 8 16)",
    )
    r.add_argument(
        "--groups",
        type=int,
        default=2000,
        help="synthetic attention groups of 10-60 logits (default 2000)",
    )
    r.add_argument("--seed", type=int, default=0, help="seed of the synthetic logits")
    if model_section is not None:
        r.add_argument(
            "--model",
            default=None,
            help="an allegro-attn model file: report on its own attention logits too",
        )
        r.add_argument(
            "--data",
            default=None,
            help="labelled extxyz for --model: energy/force MAE with each backend",
        )
        r.add_argument("--max-frames", type=int, default=20, help="frames of --data used")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    r.add_argument(
        "--out",
        default="lut_report",
        help="folder for report.json and error_vs_d.png (default ./lut_report)",
    )
    r.set_defaults(func=cmd_report, model_section=model_section)


def cmd_report(args: argparse.Namespace) -> int:
    """``gnnff lut report``: write report.json and error_vs_d.png, print the table."""

    from gnnff.io_utils import atomic_write_json
    from gnnff.lut_accel.report import lut_report, plot_error_vs_distance

    if args.groups < 1:
        raise UsageError(f"--groups must be >= 1, got {args.groups}")
    report = lut_report(bits=tuple(sorted(set(args.bits))), seed=args.seed, num_groups=args.groups)
    model, data = getattr(args, "model", None), getattr(args, "data", None)
    if (model is None) != (data is None):
        raise UsageError("--model and --data go together (a model file and labelled extxyz)")
    if model is not None:
        report["model"] = args.model_section(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "report.json", report)
    try:
        png: Path | None = plot_error_vs_distance(report, out / "error_vs_d.png")
    except MissingExtraError as exc:
        print(f"note: error_vs_d.png skipped: {exc}", file=sys.stderr)
        png = None
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "error_vs_d"}, indent=2))
        return 0
    d = report["data"]
    print(
        f"LUT softmax vs float softmax on {d['groups']} synthetic groups "
        f"({d['entries']} logits, seed {d['seed']})"
    )
    print(
        f"{'backend':<10}{'bits':>5}{'table B':>9}{'max|err|':>11}{'mean|err|':>11}"
        f"{'max|sum-1|':>12}{'KL (nats)':>11}"
    )
    for row in report["results"]:
        print(
            f"{row['backend']:<10}{row['bits']:>5}{row['table_bytes']:>9}"
            f"{row['max_abs_err']:>11.2e}{row['mean_abs_err']:>11.2e}"
            f"{row['max_sum_err']:>12.2e}{row['kl']:>11.2e}"
        )
    if "model" in report:
        m = report["model"]
        print(f"\nmodel {m['model']} on {m['frames']} frames of {m['data']}")
        print(
            f"{'backend':<10}{'bits':>5}{'max|err|':>11}{'KL':>10}{'E MAE':>9}{'F MAE':>9}"
            f"{'max dE':>9}{'max dF':>9}   (meV/atom, meV/A)"
        )
        for row in m["results"]:
            lg = row.get("logits", {})
            print(
                f"{row['backend']:<10}{str(row['bits']):>5}"
                f"{lg.get('max_abs_err', 0):>11.2e}{lg.get('kl', 0):>10.2e}"
                f"{row['energy_mae']:>9.2f}{row['force_mae']:>9.1f}"
                f"{row['max_denergy_vs_float']:>9.3f}{row['max_dforce_vs_float']:>9.2f}"
            )
    print(f"wrote {out / 'report.json'}" + (f" and {png}" if png else ""))
    return 0
