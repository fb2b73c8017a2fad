"""`gnnff lut ...` subcommands (heavy imports stay inside the command functions)."""

import argparse
import json


def register(subparsers) -> None:
    """Add ``lut`` with its subcommands to the top-level ``gnnff`` parser."""
    p = subparsers.add_parser("lut", help="LUT-softmax accelerator emulator: accuracy reports")
    sub = p.add_subparsers(dest="lut_command", metavar="{report}")
    sub.required = True
    r = sub.add_parser(
        "report",
        help="table sizes and errors (max/mean abs, KL) of the LUT softmax vs float softmax",
    )
    r.add_argument("--bits", type=int, nargs="+", choices=(8, 16), default=[8, 16],
                   help="bit widths to report (default: 8 16)")
    r.add_argument("--groups", type=int, default=2000,
                   help="synthetic attention groups of 10-60 logits (default 2000)")
    r.add_argument("--seed", type=int, default=0, help="seed of the synthetic logits")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    r.add_argument("--out", default="lut_report",
                   help="folder for report.json and error_vs_d.png (default ./lut_report)")
    r.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gnnff.io_utils import atomic_write_json
    from gnnff.lut_accel.report import lut_report, plot_error_vs_distance

    if args.groups < 1:
        raise ValueError(f"--groups must be >= 1, got {args.groups}")
    report = lut_report(bits=tuple(sorted(set(args.bits))), seed=args.seed,
                        num_groups=args.groups)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "report.json", report)
    png = plot_error_vs_distance(report, out / "error_vs_d.png")
    if args.json:
        print(json.dumps({k: v for k, v in report.items() if k != "error_vs_d"}, indent=2))
        return 0
    d = report["data"]
    print(f"LUT softmax vs float softmax on {d['groups']} synthetic groups "
          f"({d['entries']} logits, seed {d['seed']})")
    print(f"{'backend':<10}{'bits':>5}{'table B':>9}{'max|err|':>11}{'mean|err|':>11}"
          f"{'max|sum-1|':>12}{'KL (nats)':>11}")
    for row in report["results"]:
        print(f"{row['backend']:<10}{row['bits']:>5}{row['table_bytes']:>9}"
              f"{row['max_abs_err']:>11.2e}{row['mean_abs_err']:>11.2e}"
              f"{row['max_sum_err']:>12.2e}{row['kl']:>11.2e}")
    print(f"wrote {out / 'report.json'} and {png}")
    return 0
