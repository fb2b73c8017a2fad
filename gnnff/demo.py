"""``gnnff demo``: the main job on the bundled default, end to end in a few minutes on 2 cores.

1. quick SiO2 / SiO_x reference data from the Tersoff potential (LAMMPS);
2. the bundled stabilized model and its baseline (``sio2-allegro-decorrelated`` /
   ``sio2-allegro-baseline``); where they are not bundled, both are trained here on the quick
   data (baseline vs decorrelation loss, same seed) so the pipeline still runs end to end;
3. each model runs a short out-of-distribution MD (amorphous SiO_1.55, 1000 K) in ASE and in
   LAMMPS on 2 MPI ranks, under the same stability criteria;
4. a table of stable time and Stability Index, with report plots in the output folder;
5. one round of stability-driven active learning (``gnnff stabilize``) on the baseline: explore
   SiO_1.10 at 1500 K -> failure frames -> Tersoff labels -> fine-tune -> explore again.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

PAIR = {"decorrelated": "sio2-allegro-decorrelated", "baseline": "sio2-allegro-baseline"}


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="run the main job on the bundled default")
    p.add_argument("--out", default="demo_out", help="folder for data, reports and plots")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--time-ps", type=float, default=2.0, help="length of each MD run")
    p.add_argument("--temperature", type=float, default=1000.0)
    p.add_argument("--np", type=int, default=2, help="MPI ranks of the LAMMPS runs")
    p.add_argument(
        "--skip-stabilize", action="store_true", help="leave out step 5 (one active-learning round)"
    )
    p.set_defaults(func=run_demo)


def _models(out: Path, data: Path, seed: int) -> dict[str, Path]:
    from gnnff.calculators.pretrained import available_pretrained, pretrained_path

    if all(name in available_pretrained() for name in PAIR.values()):
        from gnnff.potentials import read_metadata

        for name in PAIR.values():
            b = read_metadata(pretrained_path(name))["training"]["bundle"]
            ev, s = b["evaluation"]["test_id"], b["stability"]["mean_stability_index"]
            print(
                f"    bundled {name}: ID force MAE {ev['force_mae']:.0f} meV/A, "
                f"residual-stream corr. {ev['lcorr']:.2f} (basis-dependent), recorded mean S "
                f"{s:.2f}"
            )
        return {label: pretrained_path(name) for label, name in PAIR.items()}
    from gnnff.training.config import load_config
    from gnnff.training.trainer import Trainer

    print("    (no bundled trained models in this install: training both on the quick data)")
    base = Path(__file__).parent / "training" / "demo.yaml"
    paths = {}
    for label, decor in (("baseline", "false"), ("decorrelated", "true")):
        run = out / "models" / label
        cfg = load_config(
            base,
            [
                f"data.train={data / 'train.extxyz'}",
                f"data.valid={data / 'valid.extxyz'}",
                f"decorrelation.enabled={decor}",
                f"training.seed={seed}",
            ],
        )
        t0 = time.perf_counter()
        Trainer(
            cfg,
            run,
            resume=(run / "checkpoint.pt").is_file() and not (run / "model.pt").is_file(),
            log=lambda m: None,
        ).fit()
        summary = json.loads((run / "summary.json").read_text())
        print(
            f"    trained {label:8s}: valid force MAE "
            f"{summary['final_valid']['force_mae']:.0f} meV/A, residual-stream corr. "
            f"{summary['final_lcorr']:.3f} ({time.perf_counter() - t0:.0f} s)"
        )
        paths[label] = run / "model.pt"
    return paths


def run_demo(args: argparse.Namespace) -> int:
    import ase.io
    import numpy as np

    from gnnff.calculators import GNNFFCalculator
    from gnnff.calculators.md import MDSettings, run_md
    from gnnff.data.generate import generate_dataset
    from gnnff.lammps.driver import run_lammps_input
    from gnnff.lammps.geometry import write_lammps_data
    from gnnff.potentials import read_metadata
    from gnnff.stability import StabilityConfig, StabilityReference

    out = Path(args.out).resolve()
    t0 = time.perf_counter()
    print("[1] reference data: quick SiO2 / SiO_x set labelled by Tersoff (LAMMPS)")
    data = out / "data"
    manifest = generate_dataset(
        "sio2-tersoff", data, seed=args.seed, quick=True, overwrite=True, progress=False
    )
    print(
        "    "
        + ", ".join(
            f"{k.removesuffix('.extxyz')} {n}"
            for k, n in manifest["frames"].items()
            if "/" not in k
        )
    )
    print("[2] models")
    models = _models(out, data, args.seed)
    print(
        f"[3] OOD MD: amorphous SiO_1.55 at {args.temperature:g} K, {args.time_ps} ps, "
        f"ASE and LAMMPS ({args.np} MPI ranks)"
    )
    ref_md = ase.io.read(data / "reference_md" / "a-SiO1.55_1000K.extxyz", index=":")
    start = ref_md[-1]
    start.calc = None
    train = ase.io.read(data / "train.extxyz", index=":")
    cfg = StabilityConfig(interval=10, rdf_window_ps=0.25)
    reference = StabilityReference.from_frames(
        train, rdf_rmax=cfg.rdf_rmax, nbins=cfg.rdf_nbins, rdf_frames=ref_md
    )
    ref_path = out / "stability_reference.json"
    reference.save(ref_path)
    crit_path = out / "criteria.yaml"
    crit_path.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in cfg.to_dict().items()))
    rows = []
    template = Path(__file__).parent / "lammps" / "templates" / "in.nvt"
    for label, model in models.items():
        run = out / "runs" / f"{label}_ase"
        settings = MDSettings(
            ensemble="nvt",
            temperature=args.temperature,
            time_ps=args.time_ps,
            seed=args.seed,
            check_interval=10,
        )
        rep = run_md(
            start,
            GNNFFCalculator(model),
            settings,
            run,
            stability_config=cfg,
            reference=reference,
            progress=False,
        )
        rows.append((label, "ASE", rep, run))
        species = read_metadata(model)["species"]
        run = out / "runs" / f"{label}_lammps"
        run.mkdir(parents=True, exist_ok=True)
        write_lammps_data(start, run / "start.data", species)
        run_lammps_input(
            template,
            run,
            np_=args.np,
            stability=crit_path,
            reference=ref_path,
            variables={
                "model": str(model),
                "data": str(run / "start.data"),
                "types": " ".join(species),
                "temp": args.temperature,
                "steps": int(round(args.time_ps * 1000)),
                "seed": 1000 + args.seed,
            },
        )
        rows.append(
            (label, f"LAMMPS x{args.np}", json.loads((run / "report.json").read_text()), run)
        )
    print("\n[4] stability (same criteria in both engines)")
    print(f"{'model':12s} {'engine':10s} {'stable (ps)':>12s} {'S':>6s}  ended by")
    for label, engine, rep, _ in rows:
        print(
            f"{label:12s} {engine:10s} {rep['stable_time_ps']:12.3f} "
            f"{rep['stability_index']:6.2f}  {rep.get('failed_criterion') or '-'}"
        )
    s = {
        lab: np.mean([r["stability_index"] for lab2, _, r, _ in rows if lab2 == lab])
        for lab in models
    }
    print(
        f"\nmean S: decorrelated {s['decorrelated']:.2f} vs baseline {s['baseline']:.2f} "
        "(one seed, one start: what holds across seeds is in the README's study section)"
    )
    print(f"report plots: {out}/runs/*/report.png")
    if not args.skip_stabilize:
        _stabilize_round(out, data, models["baseline"], args.seed)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s; outputs in {out}/")
    return 0


def _stabilize_round(out: Path, data: Path, model: Path, seed: int) -> None:
    """Step 5: one active-learning round from ``model`` on the quick data."""
    import shutil

    import yaml

    from gnnff.active.config import validate
    from gnnff.active.loop import StabilizeLoop
    from gnnff.active.report import round_table

    print(
        "\n[5] active learning, one round (gnnff stabilize): explore SiO_1.10 at 1500 K -> "
        "failure frames -> Tersoff labels -> fine-tune 3 epochs -> explore again"
    )
    work = out / "stabilize"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    train = {
        "data": {"train": str(data / "train.extxyz"), "valid": str(data / "valid.extxyz")},
        "model": {},
        "training": {"batch_size": 4, "seed": seed, "progress": False},
    }
    (work / "train.yaml").write_text(yaml.safe_dump(train))
    cfg = validate(
        {
            "train_config": "train.yaml",
            "initial_model": str(model),
            "reference": {"preset": "sio2-tersoff"},
            "explore": {
                "time_ps": 0.5,
                "check_interval": 10,
                "runs": [
                    {
                        "structure": str(data / "reference_md" / "a-SiO1.10_1000K.extxyz"),
                        "index": -1,
                        "temperature": 1500.0,
                        "seed": seed,
                    }
                ],
            },
            "select": {"failure_frames": 5, "max_frames_per_round": 12},
            "retrain": {"mode": "finetune", "epochs": 3, "lr": 5e-4},
            "max_rounds": 1,
            "seed": seed,
        },
        work,
    )
    t0 = time.perf_counter()
    summary = StabilizeLoop(cfg, work / "run", log=lambda m: None).run()
    for row in round_table(summary):
        print(
            f"    round {row['round']}: S = {row['mean_S']:.2f}, stable "
            f"{row['median_stable_ps']:.3f} ps, frames added {row['frames_added']}"
        )
    print(
        f"    ({time.perf_counter() - t0:.0f} s; one round on a small set shows the loop, not a "
        f"stable model: the full loop is examples/stabilize/sio2_al.yaml); report: "
        f"{work / 'run' / 'stabilize.md'}"
    )
