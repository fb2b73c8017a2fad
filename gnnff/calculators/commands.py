"""``gnnff md`` (ASE MD with the stability monitor), ``gnnff dimer`` (short-range check) and
``gnnff path`` (bundled model files)."""

from __future__ import annotations

import argparse

from gnnff.errors import MissingExtraError, UsageError


def register(subparsers) -> None:
    p = subparsers.add_parser("md", help="ASE molecular dynamics with a gnnff model + monitor")
    p.add_argument("--model", required=True, help="model file, or the name of a bundled model")
    p.add_argument("--structure", required=True, help="any ASE-readable structure file")
    p.add_argument("--index", type=int, default=0, help="frame of the structure file")
    p.add_argument("--ensemble", choices=["nve", "nvt"], default="nvt", help="MD ensemble")
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="K: the initial velocities' temperature and, for nvt, the thermostat's target "
        "(default 300)",
    )
    p.add_argument(
        "--temperature-ramp",
        type=float,
        nargs=2,
        metavar=("T_START", "T_END"),
        default=None,
        help="NVT: the thermostat's target goes linearly from T_START to T_END (K) over the "
        "run (langevin or bussi); the temperature check follows it",
    )
    p.add_argument(
        "--heating-ramp",
        action="store_true",
        help="MLIP Arena's heating test: NVT 300 -> 3000 K linearly over 10 ps (--time-ps "
        "changes the length); S is the fraction of the ramp run before the first failed check",
    )
    p.add_argument("--time-ps", type=float, default=None, help="run length (required unless "
                   "--heating-ramp)")  # fmt: skip
    p.add_argument("--dt-fs", type=float, default=1.0, help="time step (fs)")
    p.add_argument(
        "--thermostat",
        choices=["langevin", "bussi", "nose-hoover"],
        default=None,
        help="NVT thermostat (default langevin)",
    )
    p.add_argument(
        "--tau-fs", type=float, default=None, help="thermostat time constant, fs (default 100)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of velocities and thermostat noise")
    p.add_argument("--traj-interval", type=int, default=10, help="steps between frames")
    p.add_argument(
        "--failure-frames",
        type=int,
        default=5,
        metavar="K",
        help="a failed run writes failing.extxyz: the K snapshots (one per stability "
        "check) before the first failed check plus the failing one, without model "
        "labels (default 5)",
    )
    p.add_argument("--stability", default=None, help="criteria YAML (StabilityConfig)")
    p.add_argument(
        "--reference",
        default="model",
        help="stability reference: 'model' (default: the training data's pair "
        "distances stored in the model file), 'none', or a JSON from "
        "`gnnff stability reference` / frames readable by ASE",
    )
    p.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        default=None,
        help="model precision (default: the precision the model file was exported in)",
    )
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument(
        "--overwrite", action="store_true", help="replace the files of an earlier run in --out"
    )
    p.set_defaults(func=_md)

    d = subparsers.add_parser(
        "dimer",
        help="short-range check: E(r) of every species pair as "
        "an isolated dimer, against the training data's closest approach",
    )
    d.add_argument("--model", default=None, help="model file, or the name of a bundled model")
    d.add_argument(
        "--reference",
        default=None,
        help="also the curves of a reference, e.g. teacher:sevennet-0 (or "
        "calculator:package.module:Class), dashed beside the model's",
    )
    d.add_argument("--species", default=None, help="comma-separated species (default: the model's)")
    d.add_argument("--r-min", type=float, default=0.5, help="A")
    d.add_argument("--r-max", type=float, default=None, help="A (default: the model's cutoff)")
    d.add_argument("--points", type=int, default=91, help="distances between --r-min and --r-max")
    d.add_argument("--out", required=True, help="folder for dimer.json and dimer.png")
    d.set_defaults(func=_dimer)

    q = subparsers.add_parser("path", help="print the file path of a bundled model")
    q.add_argument("name", nargs="?", help="registry name (omit to list them)")
    q.set_defaults(func=_path)


def _md(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gnnff.calculators import GNNFFCalculator
    from gnnff.calculators.md import MDSettings, format_report_line, read_structure, run_md
    from gnnff.potentials.bundled import model_file
    from gnnff.stability import StabilityConfig
    from gnnff.stability.reference import resolve_reference

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder for the run")
    earlier = [n for n in ("md.traj", "report.json", "run.json") if (out / n).exists()]
    if earlier and not args.overwrite:
        raise UsageError(
            f"{out} already holds a run ({', '.join(earlier)}); choose another --out or pass "
            "--overwrite to replace it"
        )
    if args.ensemble == "nve" and (args.thermostat or args.tau_fs is not None):
        raise UsageError("--thermostat and --tau-fs apply to --ensemble nvt; drop them for NVE")
    temperature, temperature_end, time_ps = _md_temperatures(args)
    settings = MDSettings(
        ensemble=args.ensemble,
        temperature=temperature,
        temperature_end=temperature_end,
        time_ps=time_ps,
        dt_fs=args.dt_fs,
        thermostat=args.thermostat or "langevin",
        tau_fs=100.0 if args.tau_fs is None else args.tau_fs,
        seed=args.seed,
        traj_interval=args.traj_interval,
        failure_frames=args.failure_frames,
    )
    settings.validate()  # before loading anything
    calc = GNNFFCalculator(model_file(args.model), device=args.device, dtype=args.dtype)
    atoms = read_structure(args.structure, args.index)
    cfg = StabilityConfig.from_yaml(args.stability) if args.stability else None
    ref = resolve_reference(args.reference, calc.metadata)
    if ref is None:
        fallback = cfg.contact_fallback if cfg else "covalent"
        print(
            f"close contacts: no stability reference; fallback '{fallback}' "
            "(covalent radii, or the first frame's distances for 'initial')"
        )
    else:
        pairs = ", ".join(f"{k} {d:.2f} A" for k, d in ref.pair_min_distances.items())
        print(f"close contacts: judged against {ref.source or args.reference} ({pairs})")
    report = run_md(
        atoms,
        calc,
        settings,
        args.out,
        stability_config=cfg,
        reference=ref if ref is not None else "none",
    )
    print(format_report_line(report))
    png = " and report.png" if (Path(args.out) / "report.png").is_file() else ""
    print(f"trajectory, report.json{png} in {args.out}")
    return 0


def _md_temperatures(args: argparse.Namespace) -> tuple[float, float | None, float]:
    """(start temperature, ramp end or None, run length in ps) from the md options."""
    from gnnff.calculators.md import HEATING_RAMP

    options = {
        "--temperature": args.temperature,
        "--temperature-ramp": args.temperature_ramp,
        "--heating-ramp": args.heating_ramp or None,
    }
    given = [name for name, value in options.items() if value is not None]
    if len(given) > 1:
        raise UsageError(f"give one of {', '.join(given)} (each sets the temperature)")
    if (args.temperature_ramp or args.heating_ramp) and args.ensemble != "nvt":
        raise UsageError("a temperature ramp is an NVT run: drop --ensemble nve")
    time_ps = args.time_ps
    if args.heating_ramp:
        start, end = HEATING_RAMP["temperature"], HEATING_RAMP["temperature_end"]
        time_ps = HEATING_RAMP["time_ps"] if time_ps is None else time_ps
    elif args.temperature_ramp:
        start, end = args.temperature_ramp
    else:
        start, end = (300.0 if args.temperature is None else args.temperature), None
    if time_ps is None:
        raise UsageError("--time-ps is required (the run length in ps)")
    return start, end, time_ps


def _dimer(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from gnnff.calculators.dimer import dimer_curves, plot_dimers, wall_heights
    from gnnff.io_utils import atomic_write_json

    if args.model is None and args.reference is None:
        raise UsageError("give --model (a model file or bundled name), --reference, or both")
    calc, path, pair_min = _dimer_model(args.model)
    species = (
        [s.strip() for s in args.species.split(",") if s.strip()]
        if args.species
        else list(calc.species)
        if calc is not None
        else []
    )
    if not species:
        raise UsageError("--species is required without --model (e.g. --species Hf,O)")
    r_max = args.r_max or (calc.cutoff if calc is not None else 5.0)
    if not 0.0 < args.r_min < r_max or args.points < 3:
        raise UsageError(
            f"need 0 < --r-min < --r-max and --points >= 3 (got {args.r_min}, "
            f"{r_max}, {args.points})"
        )
    ref_calc, ref_info = _dimer_reference(args.reference, species)  # before any output
    r = np.linspace(args.r_min, r_max, args.points)
    curves = dimer_curves(calc, species, r) if calc is not None else {}
    ref_curves = dimer_curves(ref_calc, species, r) if ref_calc is not None else None
    walls = wall_heights(curves, r, pair_min)
    ref_walls = wall_heights(ref_curves, r, pair_min) if ref_curves else {}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "dimer.json", {
        "model": args.model, "r": r.tolist(),
        "energy_eV": {k: v.tolist() for k, v in curves.items()},
        "reference": ref_info,
        "reference_energy_eV": {k: v.tolist() for k, v in (ref_curves or {}).items()},
        "training_pair_min_A": pair_min,
        "wall_eV": {k: None if np.isnan(v) else v for k, v in walls.items()},
        "reference_wall_eV": {k: None if np.isnan(v) else v for k, v in ref_walls.items()},
        "wall_definition": "E(0.75 d_min) - E(d_min), isolated dimer",
    })  # fmt: skip
    ref_label = str(ref_info.get("teacher", "reference"))
    title = f"{path.name if path else ref_label}: isolated dimers"
    try:
        plot_dimers(curves, r, pair_min, out / "dimer.png", title=title, reference=ref_curves,
                    reference_label=ref_label)  # fmt: skip
    except MissingExtraError as exc:
        print(f"note: dimer.png skipped: {exc}")
    for key in curves or ref_curves or {}:
        line = f"{key:6s}"
        for label, cv, wl in (("model", curves, walls), ("reference", ref_curves or {}, ref_walls)):
            if key not in cv:
                continue
            line += f"  {label}: E({r[0]:.2f} A) = {cv[key][0]:+9.2f} eV"
            if key in wl and not np.isnan(wl[key]):
                line += f", wall {wl[key]:+7.2f} eV{'' if wl[key] > 0 else ' <- no wall'}"
        print(line)
    if pair_min:
        print("wall = E(0.75 d_min) - E(d_min); d_min (A): "
              + ", ".join(f"{k} {v:.2f}" for k, v in pair_min.items()))  # fmt: skip
    else:
        print("(no training distances: walls not evaluated)")
    png = " and dimer.png" if (out / "dimer.png").is_file() else ""
    print(f"dimer.json{png} in {out}")
    return 0


def _dimer_model(model: str | None):  # noqa: ANN202 - (calculator | None, path, pair_min)
    if model is None:
        return None, None, {}
    from gnnff.calculators import GNNFFCalculator
    from gnnff.potentials.bundled import model_file
    from gnnff.stability.reference import StabilityReference

    path = model_file(model)
    calc = GNNFFCalculator(path, dtype="float64")
    ref = StabilityReference.from_model_metadata(calc.metadata)
    return calc, path, (ref.pair_min_distances if ref else {})


def _dimer_reference(text: str | None, species: list[str]):  # noqa: ANN202
    """(ASE calculator, provenance) of ``--reference``; (None, {}) without one."""
    if text is None:
        return None, {}
    from gnnff.data.labelling import Labeller
    from gnnff.data.reference import parse_reference_arg, reference_provenance, validate_reference

    spec = validate_reference(parse_reference_arg(text), species=species)
    return Labeller(spec).calculator(), reference_provenance(spec)


def _path(args: argparse.Namespace) -> int:
    from gnnff.calculators.pretrained import available_pretrained, pretrained_path

    if not args.name:
        for name in available_pretrained():
            print(name)
        return 0
    print(pretrained_path(args.name))
    return 0
