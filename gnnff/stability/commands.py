"""`gnnff stability ...` subcommands: analyze a trajectory, build a reference, summarize runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from gnnff.errors import UsageError


def register(subparsers: Any) -> None:
    """Add ``stability`` with its subcommands to the top-level ``gnnff`` parser."""
    p = subparsers.add_parser(
        "stability", help="MD stability: analyze trajectories, build references, summarize runs"
    )
    sub = p.add_subparsers(dest="stability_command", metavar="{analyze,reference,summarize}")
    sub.required = True

    a = sub.add_parser("analyze", help="stability report of an existing trajectory (offline)")
    a.add_argument("traj", help="ASE trajectory or extxyz (energies/forces/momenta if present)")
    a.add_argument("--reference", help="stability reference JSON, or extxyz of training frames")
    a.add_argument("--config", help="YAML file of stability settings (StabilityConfig fields)")
    a.add_argument("--ensemble", choices=("nvt", "nve", "npt"), default="nvt")
    a.add_argument("--temperature", type=float, help="target temperature (K)")
    a.add_argument("--dt-fs", type=float, help="MD time step (fs), to turn steps into times")
    a.add_argument(
        "--stride",
        type=int,
        default=1,
        help="MD steps between frames when frames carry no 'step' info (default 1)",
    )
    a.add_argument("--t-run-ps", type=float, help="planned run length (default: last frame)")
    a.add_argument("--index", default=":", help="ASE index of the frames to read (default ':')")
    a.add_argument("--out", required=True, help="output folder for report.json/report.png")
    a.set_defaults(func=cmd_analyze)

    r = sub.add_parser("reference", help="build a stability reference JSON from frames")
    r.add_argument("frames", nargs="+", help="extxyz (or any ASE-readable) files of frames")
    r.add_argument("--out", required=True, help="output JSON path")
    r.add_argument(
        "--rdf-frames",
        nargs="+",
        help="frames for the reference g(r) (default: the same frames); use MD at "
        "the state point of the runs to judge",
    )
    r.add_argument("--no-rdf", action="store_true", help="store minimum distances only")
    r.add_argument("--rdf-rmax", type=float, default=6.0, help="g(r) range (A), default 6")
    r.add_argument("--rdf-nbins", type=int, default=120, help="g(r) bins, default 120")
    r.add_argument(
        "--distance-cutoff",
        type=float,
        default=4.0,
        help="search radius for per-pair minimum distances (A), default 4",
    )
    r.set_defaults(func=cmd_reference)

    s = sub.add_parser("summarize", help="Stability Index over several report.json files")
    s.add_argument("reports", nargs="+", help="report.json files or folders holding one")
    s.add_argument("--out", help="write the summary JSON here")
    s.set_defaults(func=cmd_summarize)


def _read_frames(paths: list[str], index: str = ":") -> list[Any]:
    from gnnff.io_utils import read_frames

    which: int | str = index
    if index != ":":
        try:
            which = int(index) if ":" not in index else index
        except ValueError:
            raise UsageError(
                f"--index {index!r}: give an integer or a slice like ':' or '10:'"
            ) from None
    return [a for path in paths for a in read_frames(path, which)]


def _frame_step_time(atoms: Any, idx: int, stride: int, dt_fs: float | None) -> tuple[int, float]:
    info = atoms.info
    step = info.get("step", info.get("timestep"))
    step = int(step) if step is not None else idx * stride
    if "time_ps" in info:
        return step, float(info["time_ps"])
    if dt_fs is None:
        raise UsageError(
            "frame times are unknown: pass --dt-fs (the MD time step in fs) and, if the frames "
            "carry no 'step' info, --stride (MD steps between saved frames)"
        )
    return step, step * dt_fs / 1000.0


def cmd_analyze(args: argparse.Namespace) -> int:
    from gnnff.stability.config import StabilityConfig
    from gnnff.stability.reference import StabilityReference
    from gnnff.stability.snapshot import Snapshot
    from gnnff.stability.tracker import StabilityTracker
    from gnnff.stability.verdict import format_verdict

    try:
        if args.dt_fs is not None and not args.dt_fs > 0:
            raise UsageError(f"--dt-fs must be > 0 fs, got {args.dt_fs}")
        if args.stride < 1:
            raise UsageError(f"--stride must be >= 1 (MD steps between frames), got {args.stride}")
        if args.t_run_ps is not None and not args.t_run_ps > 0:
            raise UsageError(f"--t-run-ps must be > 0 ps, got {args.t_run_ps}")
        config = StabilityConfig.from_yaml(args.config) if args.config else StabilityConfig()
        reference = None
        if args.reference:
            reference = StabilityReference.from_path(
                args.reference, config.rdf_rmax, config.rdf_nbins
            )
        frames = _read_frames([args.traj], args.index)
        if not frames:
            raise UsageError(f"{args.traj} holds no frames")
        times = [_frame_step_time(a, k, args.stride, args.dt_fs) for k, a in enumerate(frames)]
    except (ValueError, FileNotFoundError) as exc:
        print(f"gnnff stability analyze: {exc}", file=sys.stderr)
        return 2
    t_run = args.t_run_ps if args.t_run_ps is not None else times[-1][1]
    tracker = StabilityTracker(config, reference, args.ensemble, args.temperature, t_run)
    for atoms, (step, t) in zip(frames, times, strict=True):
        tracker.update(Snapshot.from_atoms(atoms, step, t))
    rep = tracker.write(args.out)
    print(format_verdict(rep))
    print(f"wrote {Path(args.out) / 'report.json'} and report.png")
    return 0


def cmd_reference(args: argparse.Namespace) -> int:
    from gnnff.stability.reference import StabilityReference

    try:
        if args.rdf_nbins < 2 or not args.rdf_rmax > 0 or not args.distance_cutoff > 0:
            raise UsageError(
                "need --rdf-nbins >= 2, --rdf-rmax > 0 and --distance-cutoff > 0 "
                f"(got {args.rdf_nbins}, {args.rdf_rmax}, {args.distance_cutoff})"
            )
        if Path(args.out).is_dir():
            raise UsageError(f"--out {args.out} is a folder; give the path of a JSON file")
        frames = _read_frames(args.frames)
        rdf_frames = _read_frames(args.rdf_frames) if args.rdf_frames else None
        ref = StabilityReference.from_frames(
            frames,
            rdf_rmax=args.rdf_rmax,
            nbins=args.rdf_nbins,
            rdf_frames=rdf_frames,
            with_rdf=not args.no_rdf,
            distance_cutoff=args.distance_cutoff,
            source=", ".join(args.frames),
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"gnnff stability reference: {exc}", file=sys.stderr)
        return 2
    ref.save(args.out)
    pairs = ", ".join(f"{k} {v:.3f} A" for k, v in ref.pair_min_distances.items())
    print(f"{len(frames)} frames; minimum pair distances: {pairs}")
    print(f"wrote {args.out}")
    return 0


def cmd_summarize(args: argparse.Namespace) -> int:
    from gnnff.io_utils import atomic_write_json
    from gnnff.stability.index import load_reports, summarize_runs

    try:
        summary = summarize_runs(load_reports(args.reports))
    except (ValueError, FileNotFoundError, json.JSONDecodeError) as exc:
        print(f"gnnff stability summarize: {exc}", file=sys.stderr)
        return 2
    if args.out:
        atomic_write_json(args.out, summary)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    return 0
