"""Training cost side by side: gnnff's Allegro-style model against nequip-allegro (issue 19).

    .venv-bench/bin/python benchmarks/bench_training_vs_nequip.py --data data/sio2
        [--budget-cpu-s 720] [--seeds 0,1] [--eval-every-cpu-s 45] [--out DIR] [--plot-only]

Both models (the matched ``small`` size of ``bench_vs_nequip.py``: cutoff 5 A, 8 Bessel
functions, polynomial envelope p = 6, l_max 1, no parity, 2 layers, 32 scalar and 8 tensor
channels, one hidden layer of 64 in every MLP; float32) are trained by the *same* loop on the
*same* data (``gnnff data generate --preset sio2-tersoff``: train.extxyz / valid.extxyz), with:

- the same normalisation: per-species energy shifts from a least-squares fit of the training
  energies on the species counts (gnnff's ``fit_species_shift``), per-species energy scales =
  the training force RMS, avg_num_neighbors = the training set's mean neighbour count;
- the same loss: mean((E - E_ref)/N)^2 + mean((F - F_ref)^2) (energy per atom, force
  components; weights 1 and 1 as in the bundled models' configs), float32;
- the same optimiser: Adam, lr 2e-3 constant, batch size 4, the same shuffled order per epoch
  (numpy seed), 2 torch threads, one process per (code, seed).

Each run trains until ``--budget-cpu-s`` CPU-seconds of training steps (process CPU time, both
threads; evaluation excluded) and every ``--eval-every-cpu-s`` evaluates the validation energy
and force MAE (the same frames, forces by autograd in both). Step time: median wall and CPU
seconds of the training steps after the first 5 (warm-up). Input preparation (neighbour lists,
nequip's ``AtomicDataDict`` / gnnff's ``Structure``) is done once, before the clock starts,
by each code's own path.

Differences that remain (the two codes do not allow closer): the species embedding (gnnff
concatenates learned species vectors into the two-body MLP input; allegro multiplies a Bessel
projection by a per-pair-type embedding), initialisation (each code's own), allegro's
per-edge-type two-body MLP vs gnnff's shared one, and gnnff runs its eager training model while
nequip runs its ``GraphModel`` (both eager autograd, double backward).

Output: ``DIR/<code>_seed<S>.json`` per run (resumable: finished runs are skipped),
``DIR/summary.json``, ``DIR/training_vs_nequip.png`` (validation force MAE vs CPU-seconds, the
two codes side by side) and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCH_PY = ROOT / ".venv-bench" / "bin" / "python"
CODES = ("gnnff", "nequip")
VARIANTS = {"gnnff": "gnnff", "nequip": "nequip", "gnnff-torchinit": "gnnff"}
"""Runnable codes: ``gnnff`` builds its model with the default ``model.weight_init``
(``variance_preserving``), ``gnnff-torchinit`` with ``weight_init: torch`` (PyTorch's default
init, gnnff's default before the comparison showed it learned slower)."""
SPECIES = ["Si", "O"]
CUTOFF = 5.0
THREADS = 2
LR = 2e-3
BATCH = 4
SIZE = {"num_scalar": 32, "num_tensor": 8, "hidden": 64}


def _normalisation(train) -> dict[str, Any]:
    from gnnff.training.data import avg_num_neighbors, fit_species_shift, force_rms

    return {
        "shifts": [float(x) for x in fit_species_shift(train, len(SPECIES))],
        "scale": float(force_rms(train)),
        "avg_num_neighbors": float(avg_num_neighbors(train)),
    }


class _GnnffRunner:
    def __init__(self, seed: int, data: Path, weight_init: str = "variance_preserving") -> None:
        import torch

        from gnnff.potentials import build_model
        from gnnff.training.data import build_structures, read_frames

        def structs(name: str):
            return build_structures(read_frames(data / name), data / name, SPECIES, CUTOFF)

        self.train, self.valid = structs("train.extxyz"), structs("valid.extxyz")
        self.norm = _normalisation(self.train)
        torch.manual_seed(seed)
        self.model = build_model(
            {
                "family": "allegro",
                "species": SPECIES,
                "cutoff": CUTOFF,
                "l_max": 1,
                "num_layers": 2,
                "num_scalar": SIZE["num_scalar"],
                "num_tensor": SIZE["num_tensor"],
                "mlp_hidden": [SIZE["hidden"]],
                "num_bessel": 8,
                "poly_p": 6,
                "weight_init": weight_init,
            }
        )
        self.model.set_species_shift_scale(
            torch.tensor(self.norm["shifts"]), torch.full((2,), self.norm["scale"])
        )
        self.model.set_avg_num_neighbors(self.norm["avg_num_neighbors"])
        self.model.to(torch.float32)

    def batches(self, idx: list[int], valid: bool = False):
        from gnnff.training.data import collate

        frames = self.valid if valid else self.train
        return collate([frames[i] for i in idx], __import__("torch").float32)

    def predict(self, batch, training: bool):
        from gnnff.training.loss import predict

        out = predict(self.model, batch, forces=True, create_graph=training)
        return (
            out["energy"],
            out["forces"],
            batch.energy.to(out["energy"].dtype),
            batch.forces,
            batch.num_atoms,
        )


class _NequipRunner:
    def __init__(self, seed: int, data: Path) -> None:
        import ase.io
        import bench_vs_nequip  # this folder (sys.path[0] when run as a script)
        import torch
        from nequip.data import AtomicDataDict, from_ase
        from nequip.integrations.utils import basic_transforms
        from nequip.utils.global_state import set_global_state

        from gnnff.training.data import build_structures, read_frames

        set_global_state()
        train_s = build_structures(
            read_frames(data / "train.extxyz"), data / "train.extxyz", SPECIES, CUTOFF
        )
        self.norm = _normalisation(train_s)
        self.model = bench_vs_nequip.allegro_model(
            "small",
            "float32",
            seed,
            avg_num_neighbors=self.norm["avg_num_neighbors"],
            per_type_energy_shifts=dict(zip(SPECIES, self.norm["shifts"], strict=True)),
            per_type_energy_scales={s: self.norm["scale"] for s in SPECIES},
        )
        transforms = basic_transforms(
            self.model.metadata,
            CUTOFF,
            SPECIES,
            {t: t for t in SPECIES},
            neighborlist_backend="vesin",
        )
        self.K = AtomicDataDict

        def prepare(name: str) -> list[dict]:
            out = []
            for atoms in ase.io.read(data / name, ":"):
                d = from_ase(atoms)
                for t in transforms:
                    d = t(d)
                out.append(d)
            return out

        self.train, self.valid = prepare("train.extxyz"), prepare("valid.extxyz")
        self.torch = torch

    def batches(self, idx: list[int], valid: bool = False):
        frames = self.valid if valid else self.train
        return self.K.batched_from_list([dict(frames[i]) for i in idx])

    def predict(self, batch, training: bool):
        K = self.K
        e_ref = batch[K.TOTAL_ENERGY_KEY].reshape(-1).clone()
        f_ref = batch[K.FORCE_KEY].clone()
        inp = {k: v for k, v in batch.items() if k not in (K.TOTAL_ENERGY_KEY, K.FORCE_KEY)}
        self.model.train(training)
        out = self.model(inp)
        e = out[K.TOTAL_ENERGY_KEY].reshape(-1)
        f = out[K.FORCE_KEY]
        return e, f, e_ref.to(e.dtype), f_ref.to(f.dtype), batch[K.NUM_NODES_KEY]


def _loss(e, f, e_ref, f_ref, n):
    per_atom = (e - e_ref) / n.to(e.dtype)
    return (per_atom**2).mean() + ((f - f_ref) ** 2).mean()


def _evaluate(runner, torch) -> dict[str, float]:
    n_valid = len(runner.valid)
    e_err, f_err, n_f = 0.0, 0.0, 0
    for s in range(0, n_valid, 8):
        batch = runner.batches(list(range(s, min(s + 8, n_valid))), valid=True)
        e, f, e_ref, f_ref, n = runner.predict(batch, training=False)
        e_err += float(((e.detach() - e_ref) / n.to(e.dtype)).abs().sum())
        f_err += float((f.detach() - f_ref).abs().sum())
        n_f += f_ref.numel()
    return {
        "valid_energy_mae_mev_atom": 1e3 * e_err / n_valid,
        "valid_force_mae_mev_a": 1e3 * f_err / n_f,
    }


def child(code: str, seed: int, data: Path, budget: float, every: float, out: Path) -> None:
    import torch

    torch.set_num_threads(THREADS)
    t0 = time.perf_counter()
    if VARIANTS[code] == "gnnff":
        init = "torch" if code == "gnnff-torchinit" else "variance_preserving"
        runner: Any = _GnnffRunner(seed, data, weight_init=init)
    else:
        runner = _NequipRunner(seed, data)
    model = runner.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=LR)
    rng = np.random.default_rng(seed)
    proc_cpu = time.process_time
    curve = [{"cpu_s": 0.0, "wall_s": 0.0, "step": 0, **_evaluate(runner, torch)}]
    cpu_train, wall_train, step, epoch = 0.0, 0.0, 0, 0
    step_cpu: list[float] = []
    step_wall: list[float] = []
    next_eval = every
    print(
        f"[{code} seed {seed}] {sum(p.numel() for p in params)} parameters; "
        f"start MAE {curve[0]['valid_force_mae_mev_a']:.1f} meV/A; set-up "
        f"{time.perf_counter() - t0:.0f} s",
        flush=True,
    )
    while cpu_train < budget:
        order = rng.permutation(len(runner.train))
        epoch += 1
        for s in range(0, len(order) - BATCH + 1, BATCH):
            batch = runner.batches(order[s : s + BATCH].tolist())
            c0, w0 = proc_cpu(), time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = _loss(*runner.predict(batch, training=True))
            loss.backward()
            opt.step()
            dc, dw = proc_cpu() - c0, time.perf_counter() - w0
            cpu_train += dc
            wall_train += dw
            step += 1
            if step > 5:
                step_cpu.append(dc)
                step_wall.append(dw)
            if cpu_train >= next_eval or cpu_train >= budget:
                row = {
                    "cpu_s": cpu_train,
                    "wall_s": wall_train,
                    "step": step,
                    "epoch": epoch,
                    **_evaluate(runner, torch),
                }
                curve.append(row)
                next_eval += every
                print(
                    f"[{code} seed {seed}] {cpu_train:7.0f} CPU-s step {step:5d}: force MAE "
                    f"{row['valid_force_mae_mev_a']:.1f} meV/A, energy "
                    f"{row['valid_energy_mae_mev_atom']:.1f} meV/atom",
                    flush=True,
                )
            if cpu_train >= budget:
                break
    result = {
        "code": code,
        "seed": seed,
        "budget_cpu_s": budget,
        "threads": THREADS,
        "parameters": int(sum(p.numel() for p in params)),
        "normalisation": runner.norm,
        "train_frames": len(runner.train),
        "valid_frames": len(runner.valid),
        "steps": step,
        "epochs": epoch,
        "step_cpu_s_median": statistics.median(step_cpu or [cpu_train / step]),
        "step_wall_s_median": statistics.median(step_wall or [wall_train / step]),
        "curve": curve,
    }
    from gnnff.io_utils import atomic_write_json

    atomic_write_json(out, result)


def _mae_at(curve: list[dict], cpu_s: float) -> float:
    """The validation force MAE of the evaluation nearest to ``cpu_s`` (evaluations happen at
    the first step that crosses each multiple of ``--eval-every-cpu-s``)."""
    return min(curve, key=lambda r: abs(r["cpu_s"] - cpu_s))["valid_force_mae_mev_a"]


def _last_quarter(curve: list[dict], key: str) -> float:
    """Median of ``key`` over the evaluations in the last quarter of the budget: single
    evaluations jump by 2-5x in energy with a constant learning rate and no EMA."""
    end = curve[-1]["cpu_s"]
    return statistics.median(r[key] for r in curve if r["cpu_s"] >= 0.75 * end)


def summarise(
    out: Path, seeds: list[int], budget: float, codes: tuple[str, ...] = CODES
) -> dict[str, Any]:
    runs = {
        c: [
            json.loads((out / f"{c}_seed{s}.json").read_text())
            for s in seeds
            if (out / f"{c}_seed{s}.json").exists()
        ]
        for c in codes
    }
    marks = [budget * f for f in (0.125, 0.25, 0.5, 1.0)]
    rows = {}
    for c, rs in runs.items():
        if not rs:
            continue
        rows[c] = {
            "seeds": [r["seed"] for r in rs],
            "parameters": rs[0]["parameters"],
            "step_cpu_s": statistics.median(r["step_cpu_s_median"] for r in rs),
            "step_wall_s": statistics.median(r["step_wall_s_median"] for r in rs),
            "steps_in_budget": statistics.median(r["steps"] for r in rs),
            "force_mae_at": {f"{m:.0f}": [_mae_at(r["curve"], m) for r in rs] for m in marks},
            "final_energy_mae_mev_atom": [r["curve"][-1]["valid_energy_mae_mev_atom"] for r in rs],
            "last_quarter_force_mae": [
                _last_quarter(r["curve"], "valid_force_mae_mev_a") for r in rs
            ],
            "last_quarter_energy_mae": [
                _last_quarter(r["curve"], "valid_energy_mae_mev_atom") for r in rs
            ],
        }
    summary = {"budget_cpu_s": budget, "rows": rows}
    from gnnff.io_utils import atomic_write_json

    atomic_write_json(out / "summary.json", summary)
    _plot(runs, out / "training_vs_nequip.png")
    head = (
        ["code", "parameters", "step CPU s", "step wall s", "steps"]
        + [f"force MAE @ {m:.0f} CPU-s" for m in marks]
        + ["last-quarter median force MAE (meV/A)", "last-quarter median E MAE (meV/atom)"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c, r in rows.items():
        maes = [" / ".join(f"{v:.0f}" for v in r["force_mae_at"][f"{m:.0f}"]) for m in marks]
        lines.append(
            f"| {c} | {r['parameters']} | {r['step_cpu_s']:.3f} | "
            f"{r['step_wall_s']:.3f} | {r['steps_in_budget']:.0f} | "
            + " | ".join(maes)
            + " | "
            + " / ".join(f"{v:.0f}" for v in r["last_quarter_force_mae"])
            + " | "
            + " / ".join(f"{v:.1f}" for v in r["last_quarter_energy_mae"])
            + " |"
        )
    print("\n".join(lines))
    (out / "table.md").write_text("\n".join(lines) + "\n")
    return summary


def _plot(runs: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    colours = {"gnnff": "tab:blue", "nequip": "tab:orange", "gnnff-torchinit": "tab:grey"}
    for c, rs in runs.items():
        for k, r in enumerate(rs):
            cpu = [p["cpu_s"] / 60 for p in r["curve"]]
            label = f"{c}" if k == 0 else None
            for ax, key in zip(
                axes, ("valid_force_mae_mev_a", "valid_energy_mae_mev_atom"), strict=True
            ):
                ax.plot(
                    cpu,
                    [p[key] for p in r["curve"]],
                    color=colours[c],
                    alpha=0.8,
                    label=label,
                    marker=".",
                )
    names = ("validation force MAE (meV/A)", "validation energy MAE (meV/atom)")
    for ax, name in zip(axes, names, strict=True):
        ax.set_xlabel(f"training CPU-minutes ({THREADS} threads)")
        ax.set_ylabel(name)
        ax.set_yscale("log")
        ax.legend()
    fig.suptitle("gnnff vs nequip-allegro, same data / hyperparameters / loop (one line per seed)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=ROOT / "data" / "sio2")
    p.add_argument("--budget-cpu-s", type=float, default=720.0)
    p.add_argument("--eval-every-cpu-s", type=float, default=45.0)
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--codes", default=",".join(CODES), help=f"of {sorted(VARIANTS)}")
    p.add_argument("--out", type=Path, default=HERE / "results" / "training_vs_nequip")
    p.add_argument("--plot-only", action="store_true")
    p.add_argument("--child", nargs=2, metavar=("CODE", "SEED"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    codes = tuple(args.codes.split(","))
    if set(codes) - set(VARIANTS):
        p.error(f"--codes: unknown {sorted(set(codes) - set(VARIANTS))}; known: {sorted(VARIANTS)}")
    if args.child:
        code, seed = args.child[0], int(args.child[1])
        child(
            code,
            seed,
            args.data,
            args.budget_cpu_s,
            args.eval_every_cpu_s,
            args.out / f"{code}_seed{seed}.json",
        )
        return 0
    if not (args.data / "train.extxyz").is_file():
        p.error(
            f"--data {args.data}: no train.extxyz; create it with "
            "`gnnff data generate --preset sio2-tersoff --out DIR`"
        )
    try:
        import allegro  # noqa: F401

        python = sys.executable
    except ImportError:
        if not BENCH_PY.exists():
            raise SystemExit(
                f"no {BENCH_PY}: create it with `bash benchmarks/nequip_env.sh`"
            ) from None
        python = str(BENCH_PY)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.plot_only:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(THREADS)}
        for seed in seeds:  # alternate the codes so slow phases of the machine hit both
            order = codes if seed % 2 == 0 else codes[::-1]
            for code in order:
                if (args.out / f"{code}_seed{seed}.json").exists():
                    continue
                subprocess.run(
                    [
                        python,
                        __file__,
                        "--child",
                        code,
                        str(seed),
                        "--data",
                        str(args.data),
                        "--budget-cpu-s",
                        str(args.budget_cpu_s),
                        "--eval-every-cpu-s",
                        str(args.eval_every_cpu_s),
                        "--out",
                        str(args.out),
                    ],
                    check=True,
                    env=env,
                )
    summarise(args.out, seeds, args.budget_cpu_s, codes)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
