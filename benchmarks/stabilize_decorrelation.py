"""Active learning with and without the decorrelation loss: labelled frames and CPU to stability.

    python benchmarks/stabilize_decorrelation.py --data data/sio2 [--out DIR] [--seeds 0,1,2]
        [--time-ps 1.0] [--epochs 8] [--max-rounds 3] [--workers 2] [--report-only]

The paper's claim in the form of issue 15 (item 7): if decorrelated models need fewer labelled
frames (or rounds, or CPU) to become stable, the loss pays off even where it does not stabilise
a model by itself. Two arms, the same loop seeds:

- ``baseline``: starts from the bundled ``sio2-allegro-baseline``; fine-tuning without the loss
  (``examples/training/sio2_baseline.yaml``);
- ``decorrelated``: starts from the bundled ``sio2-allegro-decorrelated``; fine-tuning with the
  residual loss at its final strength (``sio2_decorrelated.yaml`` with ``scheduler: constant``,
  since the model already went through the warm-up).

Exploration: the six starts of ``examples/stabilize/sio2_al.yaml`` (SiO1.10 / SiO1.55 glasses at
1000 and 1500 K, frames 10 and 35 of the reference-MD trajectories; the held-out evaluation uses
frames 60 and 90), Langevin NVT, ``--time-ps`` each; the loop seed s shifts every run's thermostat
seed by 100 s and the fine-tuning seed by s. A loop is converged when every run of a round
reaches S = 1 for the full time. The initial models are one training seed each: seeds here vary
exploration trajectories and fine-tuning, not the starting model (stated in the report).

Each loop is an ordinary resumable ``gnnff stabilize`` folder (``DIR/ARM/seed_S``); rerunning
this script continues where it stopped. Output: ``DIR/report.json`` and ``DIR/report.md``
(per loop: rounds, frames, CPU s; per arm: medians; paired differences over seeds with a sign
test and a Wilcoxon signed-rank p-value when the seeds allow one).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(1, str(ROOT))

ARMS = ("baseline", "decorrelated")
STARTS = [  # (trajectory, frame, temperature): the starts of examples/stabilize/sio2_al.yaml
    ("a-SiO1.10_1000K.extxyz", 10, 1000.0),
    ("a-SiO1.10_1000K.extxyz", 35, 1500.0),
    ("a-SiO1.55_1000K.extxyz", 10, 1000.0),
    ("a-SiO1.55_1000K.extxyz", 35, 1500.0),
    ("a-SiO1.10_2000K.extxyz", 10, 1500.0),
    ("a-SiO1.55_2000K.extxyz", 10, 1500.0),
]


def _train_config(arm: str, data: Path) -> dict[str, Any]:
    from gnnff.io_utils import load_yaml

    name = "sio2_baseline.yaml" if arm == "baseline" else "sio2_decorrelated.yaml"
    cfg = load_yaml(ROOT / "examples" / "training" / name)
    cfg["data"] = {
        "train": str(data / "train.extxyz"),
        "valid": str(data / "valid.extxyz"),
        "test": str(data / "test_id.extxyz"),
    }
    if arm == "decorrelated":
        cfg["decorrelation"]["scheduler"] = "constant"
        cfg["decorrelation"].pop("warmup_epochs", None)
        cfg["decorrelation"].pop("after_warmup", None)
    return cfg


def loop_config(arm: str, seed: int, data: Path, train_yaml: Path, args) -> dict[str, Any]:
    from gnnff.potentials.bundled import pretrained_path

    model = "sio2-allegro-baseline" if arm == "baseline" else "sio2-allegro-decorrelated"
    runs = [
        {
            "structure": str(data / "reference_md" / traj),
            "index": frame,
            "temperature": temp,
            "seed": 100 * seed + k + 1,
        }
        for k, (traj, frame, temp) in enumerate(STARTS)
    ]
    return {
        "train_config": str(train_yaml),
        "initial_model": str(pretrained_path(model)),
        "reference": {"preset": "sio2-tersoff"},
        "explore": {
            "engine": "ase",
            "ensemble": "nvt",
            "time_ps": args.time_ps,
            "dt_fs": 1.0,
            "check_interval": 10,
            "workers": args.workers,
            "runs": runs,
        },
        "select": {"failure_frames": 5, "max_frames_per_round": 60, "min_rms_displacement": 0.05},
        "retrain": {"mode": "finetune", "epochs": args.epochs, "lr": 0.001},
        "max_rounds": args.max_rounds,
        "seed": seed,
    }


def run_loops(args) -> None:
    import yaml

    from gnnff.io_utils import atomic_write_text

    out: Path = args.out
    data = args.data.resolve()
    for arm in ARMS:
        train_yaml = out / arm / "train.yaml"
        train_yaml.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(train_yaml, yaml.safe_dump(_train_config(arm, data), sort_keys=False))
        for seed in args.seeds:
            ldir = out / arm / f"seed_{seed}"
            cfg_path = out / arm / f"loop_seed_{seed}.yaml"
            atomic_write_text(
                cfg_path,
                yaml.safe_dump(
                    loop_config(arm, seed, data, train_yaml.resolve(), args), sort_keys=False
                ),
            )
            summary = ldir / "summary.json"
            if summary.exists() and json.loads(summary.read_text()).get("status") in (
                "converged",
                "max_rounds",
            ):
                print(f"[{arm} seed {seed}] done", flush=True)
                continue
            cmd = [
                sys.executable,
                "-m",
                "gnnff.cli",
                "stabilize",
                str(cfg_path),
                "--out",
                str(ldir),
            ]
            if ldir.exists():
                cmd.append("--resume")
            print(f"[{arm} seed {seed}] {' '.join(cmd)}", flush=True)
            t0 = time.time()
            subprocess.run(cmd, check=True, cwd=ROOT)
            print(f"[{arm} seed {seed}] finished in {time.time() - t0:.0f} s", flush=True)


def loop_row(summary: dict[str, Any]) -> dict[str, Any]:
    """Rounds of retraining, frames and CPU seconds a loop spent until it stopped."""
    rounds = summary["rounds"]
    trained = [r for r in rounds if r.get("frames_added", 0) > 0]
    cpu = sum(sum(r.get("cpu_s", {}).values()) for r in rounds)
    last = rounds[-1]["runs"]
    return {
        "status": summary["status"],
        "retraining_rounds": len(trained),
        "frames": int(summary.get("frames_added_total", sum(r["frames_added"] for r in rounds))),
        "cpu_s": float(cpu),
        "first_round_mean_S": sum(r["stability_index"] for r in rounds[0]["runs"])
        / len(rounds[0]["runs"]),
        "last_round_mean_S": sum(r["stability_index"] for r in last) / len(last),
    }


def paired(base: list[float], test: list[float]) -> dict[str, Any]:
    """Paired differences test - base over seeds: median, sign counts, Wilcoxon p (two-sided)."""
    from scipy import stats

    diffs = [t - b for b, t in zip(base, test, strict=True)]
    res: dict[str, Any] = {
        "differences": diffs,
        "lower": sum(d < 0 for d in diffs),
        "higher": sum(d > 0 for d in diffs),
    }
    nonzero = [d for d in diffs if d != 0]
    n = len(nonzero)
    res["sign_test_p"] = float(stats.binomtest(res["lower"], n).pvalue) if n else 1.0
    res["wilcoxon_p"] = float(stats.wilcoxon(nonzero).pvalue) if n >= 1 else 1.0
    # With n paired seeds the smallest attainable two-sided Wilcoxon p is 2 / 2**n.
    res["smallest_attainable_p"] = 2.0 / 2 ** len(diffs) if diffs else 1.0
    return res


def report(args) -> dict[str, Any]:
    from gnnff.io_utils import atomic_write_text

    rows: dict[str, dict[int, dict[str, Any]]] = {arm: {} for arm in ARMS}
    for arm in ARMS:
        for seed in args.seeds:
            path = args.out / arm / f"seed_{seed}" / "summary.json"
            if path.exists():
                rows[arm][seed] = loop_row(json.loads(path.read_text()))
    seeds = [s for s in args.seeds if all(s in rows[a] for a in ARMS)]
    comparison = {}
    for key in ("retraining_rounds", "frames", "cpu_s", "first_round_mean_S"):
        comparison[key] = paired(
            [rows["baseline"][s][key] for s in seeds], [rows["decorrelated"][s][key] for s in seeds]
        )
    result = {
        "settings": {
            "time_ps": args.time_ps,
            "epochs": args.epochs,
            "max_rounds": args.max_rounds,
            "seeds": args.seeds,
        },
        "loops": {a: {str(s): r for s, r in rows[a].items()} for a in ARMS},
        "paired_seeds": seeds,
        "decorrelated_minus_baseline": comparison,
    }
    lines = [
        "| arm | seed | status | retraining rounds | frames | CPU s | mean S round 1 "
        "| mean S last |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        for s, r in sorted(rows[arm].items()):
            lines.append(
                f"| {arm} | {s} | {r['status']} | {r['retraining_rounds']} | "
                f"{r['frames']} | {r['cpu_s']:.0f} | {r['first_round_mean_S']:.3f} | "
                f"{r['last_round_mean_S']:.3f} |"
            )
    lines += [
        "",
        f"Paired over seeds {seeds} (decorrelated - baseline):",
        "",
        "| quantity | differences | lower / higher | sign-test p | Wilcoxon p "
        "| smallest attainable p |",
        "|---|---|---|---|---|---|",
    ]
    for key, c in comparison.items():
        diffs = ", ".join(f"{d:+.3g}" for d in c["differences"])
        lines.append(
            f"| {key} | {diffs} | {c['lower']} / {c['higher']} | "
            f"{c['sign_test_p']:.3g} | {c['wilcoxon_p']:.3g} | "
            f"{c['smallest_attainable_p']:.3g} |"
        )
    atomic_write_text(args.out / "report.json", json.dumps(result, indent=2) + "\n")
    atomic_write_text(args.out / "report.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        help="SiO2 data folder from `gnnff data generate --preset sio2-tersoff`",
    )
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "al_decorr")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--time-ps", type=float, default=1.0)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--max-rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    if not (args.data / "reference_md").is_dir():
        p.error(
            f"--data {args.data}: no reference_md/ folder; generate it with "
            "`gnnff data generate --preset sio2-tersoff --out DIR`"
        )
    if not args.report_only:
        run_loops(args)
    report(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
