"""Data-parallel training on one machine: epoch time of `gnnff train` with 1 process and with
`torchrun --nproc_per_node 2` (gloo), and the data-loading share of an epoch.

Modes, each a fresh `gnnff train` of the same config and seed (float32, the default small
allegro model unless --medium):
  1p x 1t   one process, one torch thread
  1p x 2t   one process, two torch threads (the single-process baseline on 2 cores)
  2p x 1t   torchrun, two processes of one thread each, batch split between them
Epoch time: median of the epochs after the first (the first includes start-up), from the run's
metrics.csv. Data loading: the collation of every batch of one epoch (numpy -> torch graph;
neighbour lists are built once, before training) timed in this process, median of 3 passes,
as a share of the 1p x 1t epoch.

    python benchmarks/bench_ddp.py [--data data/sio2] [--frames 96] [--epochs 4]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = (("1p x 1t", 1, 1), ("1p x 2t", 1, 2), ("2p x 1t", 2, 1))


def _config(train: Path, valid: Path, epochs: int, batch: int, threads: int, medium: bool) -> dict:
    model = {"family": "allegro", "cutoff": 5.0}
    if medium:
        model.update({"num_scalar": 64, "num_tensor": 16, "mlp_hidden": [128]})
    return {
        "data": {"train": str(train), "valid": str(valid)},
        "model": model,
        "training": {"epochs": epochs, "batch_size": batch, "seed": 0, "progress": False,
                     "num_threads": threads, "export": "last"},
        "optim": {"lr_schedule": "none"},
    }  # fmt: skip


def _epoch_seconds(run: Path) -> list[float]:
    with open(run / "metrics.csv") as fh:
        return [float(r["epoch_seconds"]) for r in csv.DictReader(fh)]


def _train(cfg: dict, work: Path, name: str, nproc: int) -> list[float]:
    import yaml

    path = work / f"{name.replace(' ', '')}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = work / name.replace(" ", "")
    gnnff = [sys.executable, "-m", "gnnff.cli"]
    if nproc == 1:
        cmd = gnnff + ["train", str(path), "--out", str(out)]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={nproc}", "-m", "gnnff.cli", "train", str(path),
               "--out", str(out)]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS=str(cfg["training"]["num_threads"]))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{res.stderr[-3000:]}")
    return _epoch_seconds(out)


def _collate_seconds(train: Path, batch: int) -> float:
    import torch

    from gnnff.training.data import build_structures, collate, read_frames, species_in

    torch.set_num_threads(1)
    frames = read_frames(train)
    structs = build_structures(frames, train, species_in(frames), 5.0)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        for k in range(0, len(structs), batch):
            collate(structs[k : k + batch], torch.float32)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(
    data: Path | None, n_frames: int, epochs: int, batch: int, medium: bool = False
) -> dict:
    """Train every mode on the same frames; returns the result dict (see the module doc)."""
    import ase.io

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if data:
            frames = ase.io.read(data / "train.extxyz", f":{n_frames}")
            valid = ase.io.read(data / "valid.extxyz", ":8")
        else:
            from gnnff.testing.synthetic import make_dataset

            frames = make_dataset(n_frames, seed=1, n_formula=16)
            valid = make_dataset(8, seed=2, n_formula=16)
        train_file, valid_file = work / "train.extxyz", work / "valid.extxyz"
        ase.io.write(train_file, frames)
        ase.io.write(valid_file, valid)
        rows = []
        for name, nproc, threads in MODES:
            print(f"{name}: {epochs} epochs ...", flush=True)
            cfg = _config(train_file, valid_file, epochs, batch, threads, medium)
            per_epoch = _train(cfg, work, name, nproc)
            median = statistics.median(per_epoch[1:] or per_epoch)
            rows.append({"mode": name, "processes": nproc, "threads": threads,
                         "epoch_seconds": per_epoch, "median_epoch_s": median})  # fmt: skip
        load = _collate_seconds(train_file, batch)
    base = rows[0]["median_epoch_s"]
    return {
        "frames": len(frames),
        "atoms_per_frame": len(frames[0]),
        "batch_size": batch,
        "epochs": epochs,
        "modes": rows,
        "collate_s_per_epoch": load,
        "data_loading_share_1p1t": load / base,
    }


def run(quick: bool = False) -> list[dict]:
    """Rows for ``benchmarks/run_all.py``."""
    res = measure(None, 24 if quick else 96, 2 if quick else 4, 8)
    base = res["modes"][0]["median_epoch_s"]
    rows = [
        {"bench": "ddp", "mode": r["mode"], "median_epoch_s": r["median_epoch_s"],
         "speedup": base / r["median_epoch_s"]}
        for r in res["modes"]
    ]  # fmt: skip
    rows.append(
        {"bench": "ddp", "mode": "collation share", "value": res["data_loading_share_1p1t"]}
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="data set folder (train.extxyz, valid.extxyz); "
                    "default: synthetic Si/O frames")  # fmt: skip
    ap.add_argument("--frames", type=int, default=96, help="training frames used")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--medium", action="store_true", help="64/16 channels, MLP 128")
    ap.add_argument("--out", type=Path, default=Path("bench_ddp.json"))
    args = ap.parse_args(argv)
    result = measure(args.data, args.frames, args.epochs, args.batch_size, args.medium)
    args.out.write_text(json.dumps(result, indent=1))
    base = result["modes"][0]["median_epoch_s"]
    print("| mode | median epoch (s) | speed-up vs 1p x 1t |\n|---|---|---|")
    for r in result["modes"]:
        print(f"| {r['mode']} | {r['median_epoch_s']:.2f} | {base / r['median_epoch_s']:.2f} |")
    load = result["collate_s_per_epoch"]
    print(f"data loading (collation) {load:.3f} s per epoch = {100 * load / base:.1f} % of 1p x 1t")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
