"""Training data pipeline: in memory (``data.cache: null``) vs the on-disk edge cache.

    python benchmarks/bench_data_cache.py [--frames 3000] [--formula-units 24] [--cutoff 5.0]

Data: ``--frames`` SiO2-like periodic frames (``--formula-units`` SiO2 units each, 72 atoms by
default), written to one extxyz file: 64 labelled random cells from
``gnnff.testing.synthetic.make_dataset`` (pair-Morse labels), each repeated with its
positions perturbed by 0.02 A Gaussian noise (labels copied: right for timing the pipeline,
not for fitting). A 16-frame validation file comes along.

Each measurement runs in a fresh process, through ``gnnff.training.setup.load_training_data``
(what ``gnnff train`` does: every split read and checked, neighbour lists, stability
reference; ``model.species`` given, cutoff ``--cutoff``):

- ``memory``: ``data.cache`` unset (ASE frames, one ``Structure`` per frame in memory);
- ``cache_build``: ``data.cache`` set, empty folder (streamed build, then opened);
- ``cache``: the built cache reopened (hash check incl. SHA-256 of the data file).

Then one epoch of the data side only: a shuffled pass over the training split in batches of
``--batch`` structures, each collated into float32 torch tensors (``collate``); no model.
Reported per row: load seconds, epoch seconds, peak resident set (``VmHWM``, MB, read as in
bench_memory.py), its increase over the resident set after the imports (every module either
path uses is imported first), the same for the peak during loading alone and for the resident
set right after loading, the anonymous and file-backed resident sets after the epoch (the
cache's memory-mapped pages count in ``VmHWM`` as file-backed memory the kernel may drop),
and the cache size.
Writes ``benchmarks/results/bench_data_cache.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from bench_memory import _status_kb  # noqa: E402

MODEL = {
    "family": "allegro",
    "cutoff": 5.0,
    "num_layers": 1,
    "num_scalar": 8,
    "num_tensor": 2,
    "mlp_hidden": [8],
}


def write_data(folder: Path, frames: int, units: int, seed: int = 0) -> None:
    import ase.io
    import numpy as np

    from gnnff.testing.synthetic import make_dataset

    base = make_dataset(64, seed=seed, n_formula=units)
    rng = np.random.default_rng(seed)
    with open(folder / "train.extxyz", "w") as fh:
        for k in range(frames):
            atoms = base[k % len(base)].copy()
            atoms.calc = base[k % len(base)].calc  # the labels of the unperturbed cell
            atoms.positions += rng.normal(scale=0.02, size=atoms.positions.shape)
            ase.io.write(fh, atoms, format="extxyz")
    ase.io.write(folder / "valid.extxyz", make_dataset(16, seed=seed + 1, n_formula=units))


def _child(spec: dict) -> dict:
    # everything either path imports, so that the baseline below holds the code of both
    import ase.io.extxyz  # noqa: F401
    import numpy as np
    import torch

    import gnnff.potentials.neighbors  # noqa: F401
    import gnnff.stability.reference  # noqa: F401
    import gnnff.training.edge_cache_build  # noqa: F401
    from gnnff.potentials import resolve_model_config
    from gnnff.training.config import validate_config
    from gnnff.training.data import collate
    from gnnff.training.setup import load_training_data

    resolve_model_config({**MODEL, "species": ["O", "Si"]})
    torch.set_num_threads(1)
    folder = Path(spec["folder"])
    raw = {
        "data": {"train": "train.extxyz", "valid": "valid.extxyz", "cache": spec["cache"]},
        "model": {**MODEL, "cutoff": spec["cutoff"], "species": ["O", "Si"]},
        "training": {"progress": False},
    }
    cfg = validate_config(raw, base_dir=folder)
    base_kb = _status_kb("VmRSS")
    t0 = time.perf_counter()
    data = load_training_data(cfg, log=lambda s: None)
    load_s = time.perf_counter() - t0
    after_load_kb, load_peak_kb = _status_kb("VmRSS"), _status_kb("VmHWM")
    train = data.structures["train"]
    perm = np.random.default_rng(0).permutation(len(train))
    t0 = time.perf_counter()
    atoms = 0
    for start in range(0, len(perm), spec["batch"]):
        batch = collate([train[int(k)] for k in perm[start : start + spec["batch"]]])
        atoms += int(batch.pos.shape[0])
    epoch_s = time.perf_counter() - t0
    peak_kb = _status_kb("VmHWM")
    return {
        "path": spec["name"],
        "frames": len(train),
        "atoms_seen": atoms,
        "load_s": round(load_s, 3),
        "epoch_s": round(epoch_s, 3),
        "peak_rss_MB": round(peak_kb / 1024, 1),
        "peak_increase_MB": round((peak_kb - base_kb) / 1024, 1),
        "rss_after_load_increase_MB": round((after_load_kb - base_kb) / 1024, 1),
        "peak_during_load_increase_MB": round((load_peak_kb - base_kb) / 1024, 1),
        # after the epoch: anonymous memory vs pages of mapped files (the cache's memory
        # maps; the kernel may drop them under pressure)
        "rss_anon_MB": round(_status_kb("RssAnon") / 1024, 1),
        "rss_file_MB": round(_status_kb("RssFile") / 1024, 1),
    }


def _run(spec: dict) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(f"{spec['name']} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--formula-units", type=int, default=24)
    ap.add_argument("--cutoff", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--out", default=str(HERE / "results" / "bench_data_cache.json"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        write_data(folder, args.frames, args.formula_units)
        print(f"data: {args.frames} frames written in {time.perf_counter() - t0:.1f} s", flush=True)
        rows = []
        for name, cache in (("memory", None), ("cache_build", "cache"), ("cache", "cache")):
            spec = {"name": name, "folder": tmp, "cache": cache}
            spec.update(cutoff=args.cutoff, batch=args.batch)
            rows.append(_run(spec))
            print(json.dumps(rows[-1]), flush=True)
        cache_dir = folder / "cache"
        size = sum(p.stat().st_size for p in cache_dir.rglob("*") if p.is_file())
        data_size = (folder / "train.extxyz").stat().st_size
        manifest = json.loads((cache_dir / "train" / "manifest.json").read_text())
    result = {
        "benchmark": "bench_data_cache",
        "frames": args.frames,
        "atoms_per_frame": 3 * args.formula_units,
        "edges": manifest["num_edges"],
        "cutoff": args.cutoff,
        "batch": args.batch,
        "epoch": "shuffled pass, collate to float32 tensors, no model",
        "train_file_MB": round(data_size / 2**20, 1),
        "cache_MB": round(size / 2**20, 1),
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
