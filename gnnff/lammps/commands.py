"""`gnnff lammps ...`: build the LAMMPS plugin and run LAMMPS inputs with stability tracking."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gnnff.errors import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("lammps", help="LAMMPS pair style gnnff: build the plugin, run MD")
    sub = p.add_subparsers(dest="lammps_command", required=True)

    b = sub.add_parser("build-plugin", help="compile pair_style gnnff against this LAMMPS/torch")
    b.add_argument("--force", action="store_true", help="rebuild even if a cached build exists")
    b.add_argument("--quiet", action="store_true", help="print only the plugin path")
    b.set_defaults(func=cmd_build_plugin)

    r = sub.add_parser(
        "run",
        help="run a LAMMPS input, unmodified, under MPI with stability monitoring "
        "(fix gnnff/stability) and write a stability report",
    )
    r.add_argument("input", help="LAMMPS input script (uses pair_style gnnff)")
    r.add_argument("--np", type=int, default=1, help="MPI ranks (default 1)")
    r.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="LAMMPS index variable, like lmp -var NAME VALUE (repeatable); LAMMPS runs in "
        "the input's folder, so a VALUE that is an existing relative path is made absolute, "
        "and a bundled model's name (gnnff path) becomes its file's path",
    )
    r.add_argument("--stability", help="stability settings YAML (criteria, interval, ...)")
    r.add_argument(
        "--reference",
        default="model",
        help="stability reference: 'model' (default: the training data's pair distances stored "
        "in the pair_coeff model file), 'none', or a .json / frames readable by ASE",
    )
    r.add_argument(
        "--ensemble",
        choices=["nve", "nvt", "npt"],
        help="override the ensemble guessed from the input's fixes",
    )
    r.add_argument("--temperature", type=float, help="thermostat target in K (override)")
    r.add_argument("--out", required=True, help="run folder for report.json/png and the log")
    r.add_argument(
        "--json",
        action="store_true",
        help="print run.json (status, ranks, S, ...) instead of the one-line verdict",
    )
    r.set_defaults(func=cmd_run)


def cmd_build_plugin(args: argparse.Namespace) -> int:
    from gnnff.lammps.build import build_plugin
    from gnnff.lammps.library import require_lammps_extra

    require_lammps_extra("gnnff lammps build-plugin")

    path = build_plugin(force=args.force, quiet=args.quiet)
    print(path)
    return 0


def _parse_vars(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--var expects NAME=VALUE, got {item!r} (e.g. --var model=model.pt)")
        out[name] = value
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from gnnff.lammps.driver import run_lammps_input  # it checks for the lammps extra

    info = run_lammps_input(
        args.input, args.out, np_=args.np, variables=_parse_vars(args.var),
        stability=args.stability, reference=args.reference, ensemble=args.ensemble,
        temperature=args.temperature,
    )  # fmt: skip
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(run_verdict(info, Path(args.out)))
    return 0 if info.get("status") != "lammps-error" else 3


def run_verdict(info: dict, out: Path) -> str:
    """What ``gnnff lammps run`` prints: the report's verdict line (the formatter ``gnnff md``
    uses), or the run's status and error when no report was written, then where the files
    are."""
    from gnnff.stability.verdict import format_verdict

    report_path = out / "report.json"
    if info.get("stability_index") is not None and report_path.is_file():
        line = format_verdict(json.loads(report_path.read_text()))
    else:
        line = f"{info.get('status', '?')}: {info.get('error', 'no stability report')}"
    if info.get("status") == "lammps-error":
        line += " (LAMMPS stopped with an error; see log.lammps)"
    names = ("report.json", "report.png", "failing.extxyz", "run.json", "log.lammps")
    return f"{line}\n{', '.join(n for n in names if (out / n).is_file())} in {out}"
