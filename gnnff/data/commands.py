"""``gnnff data generate|check|presets``."""

from __future__ import annotations

import argparse
import json

from gnnff.errors import UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="reference data: generate and check labelled extxyz")
    sub = p.add_subparsers(dest="data_command", required=True)

    g = sub.add_parser("generate", help="generate a labelled data set from a preset")
    g.add_argument("--preset", default="sio2-tersoff", help="bundled preset name or YAML path")
    g.add_argument("--out", required=True, help="output folder (must be empty)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--quick", action="store_true", help="small, fast version (tests, demo)")
    g.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    g.add_argument("--no-check", action="store_true", help="skip validation of the output")
    g.add_argument(
        "--label-cache",
        default=None,
        help="folder of per-frame labels of a preset with a `labels` reference (teacher); "
        "rerunning the same command reuses it (default: .<out name>.label-cache beside --out)",
    )
    g.add_argument(
        "--threads", type=int, default=None, help="torch threads of a teacher (default: torch's)"
    )
    g.set_defaults(func=_generate)

    c = sub.add_parser("check", help="validate labelled extxyz files")
    c.add_argument("files", nargs="+")
    c.add_argument("--preset", default=None, help="labelling preset (default: manifest.json)")
    c.add_argument("--samples", type=int, default=3, help="frames re-labelled by LAMMPS")
    c.set_defaults(func=_check)

    ls = sub.add_parser("presets", help="list the bundled presets")
    ls.set_defaults(func=_presets)


def _generate(args: argparse.Namespace) -> int:
    import time

    from gnnff.data.generate import generate_dataset

    t0 = time.perf_counter()
    manifest = generate_dataset(
        args.preset,
        args.out,
        seed=args.seed,
        quick=args.quick,
        overwrite=args.overwrite,
        check=not args.no_check,
        label_cache=args.label_cache,
        threads=args.threads,
    )
    print(
        f"wrote {args.out} in {time.perf_counter() - t0:.1f} s (preset {manifest['preset']}, "
        f"seed {manifest['seed']}{', quick' if manifest['quick'] else ''})"
    )
    for name, n in manifest["frames"].items():
        print(f"  {name:36s} {n:5d} frames")
    return 0


def _check(args: argparse.Namespace) -> int:
    from gnnff.data.check import DataCheckError, check_file

    if args.samples < 0:
        raise UsageError(
            f"--samples must be >= 0 (frames re-labelled by LAMMPS), got {args.samples}"
        )
    status = 0
    for f in args.files:
        try:
            s = check_file(f, preset=args.preset, n_sample=args.samples)
        except DataCheckError as exc:
            print(f"FAIL {f}\n{exc}")
            status = 1
            continue
        print("OK   " + json.dumps(s))
    return status


def _presets(args: argparse.Namespace) -> int:
    from gnnff.data.presets import list_presets, load_preset

    for name in list_presets():
        print(f"{name}: {load_preset(name).get('description', '')}")
    return 0
