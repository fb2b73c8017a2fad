"""CUDA check: the ASE calculator, MD and a training step on a GPU equal the CPU, and timings.

Run by ``benchmarks/device_check.sh`` on a machine with a CUDA device (see that script). Parts,
each writing its result into ``--out``/device_check.json as soon as it is done:

1. ``equality``: every bundled model, float64, a 1,536-atom amorphous-like SiO2 cell: energy,
   forces and stress on CUDA minus CPU (one pass and edge blocks), |diff| <= 1e-6 (eV, eV/A,
   eV/A^3).
2. ``training``: one epoch of ``gnnff train`` (float64, both families) on CPU and on CUDA from
   the same seed: max |weight difference| <= 1e-6, and the time per optimizer step.
3. ``md``: 200 steps of Langevin NVT under the stability monitor with ``device: cuda``.
4. ``timing``: calculator calls (energy + forces + stress, neighbour list included) of a
   trained model at 1.5k / 12k / 48k / 98k atoms (replicas of the 1.5k cell), float32 and
   float64, on CUDA and on every CPU core of the same machine: median of timed calls after
   warm-up, peak CUDA memory per atom.

5. ``neighbors``: the neighbour list on the host (vesin) against the list on the device
   (vesin-torch, ``GNNFFCalculator(device_neighbor_list=True)``) at 1.5k atoms (and 12k),
   float32 and float64: calls interleaved (host, device, host, ...), median s per call and
   the ratio host / device, and the float64 results of the two equal to 1e-6. Skipped, with
   a note, where vesin-torch is not installed (``pip install "gnnff[gpu]"``).

``--device cpu --quick`` runs the same code on a CPU-only machine (CUDA compared with itself
is meaningless there; it checks the script).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fixtures import jiggle, sio2_cell  # noqa: E402

TOL = 1e-6
BLOCK_EDGES = 500_000  # edges per backward pass in the bounded-memory timing
MODELS = (
    "sio2-allegro-baseline",
    "sio2-allegro-decorrelated",
    "sio2-attn-baseline",
    "sio2-attn-decorrelated",
)


def _save(out: Path, results: dict) -> None:
    tmp = out / "device_check.json.tmp"
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, out / "device_check.json")


def _labels(calc, atoms) -> tuple[float, np.ndarray, np.ndarray]:
    atoms.calc = calc
    return (
        float(atoms.get_potential_energy()),
        np.array(atoms.get_forces()),
        np.array(atoms.get_stress(voigt=False)),
    )


def model_files(names: tuple[str, ...], work: Path) -> dict[str, str]:
    """Bundled model name -> file this torch can load. A file that this torch cannot read (an
    older torch than the one that exported it) is replaced by an untrained model of the same
    hyperparameters exported here, and the substitution is recorded in the results."""
    from gnnff.potentials import build_model, export_model, load, read_metadata
    from gnnff.potentials.bundled import pretrained_path

    files = {}
    for name in names:
        path = pretrained_path(name)
        try:
            load(path)
            files[name] = str(path)
        except Exception as exc:  # noqa: BLE001 - any load failure gets the substitute
            meta = read_metadata(path)
            print(f"  {name}: this torch cannot load it ({type(exc).__name__}); untrained copy")
            torch.manual_seed(0)
            model = build_model(dict(meta["hyperparameters"]))
            files[name] = str(
                export_model(model, work / f"{name}-untrained.pt", dtype=meta["dtype"])
            )
    return files


def equality(device: str, models: dict[str, str]) -> list[dict]:
    from gnnff.calculators import GNNFFCalculator

    atoms = sio2_cell(1536, seed=1)
    rows = []
    for name, path in models.items():
        ref = _labels(GNNFFCalculator(path, dtype="float64"), atoms.copy())
        for block in (None, 20000):
            calc = GNNFFCalculator(path, device=device, dtype="float64", max_block_edges=block)
            got = _labels(calc, atoms.copy())
            diff = [abs(got[0] - ref[0])] + [
                float(np.abs(g - r).max()) for g, r in zip(got[1:], ref[1:], strict=True)
            ]
            rows.append(
                {
                    "model": name,
                    "file": Path(path).name,
                    "max_block_edges": block,
                    "abs_dE_eV": diff[0],
                    "max_abs_dF_eV_per_A": diff[1],
                    "max_abs_dstress_eV_per_A3": diff[2],
                    "pass": max(diff) <= TOL,
                }
            )
            print(f"  {name} blocks={block}: dE {diff[0]:.1e} dF {diff[1]:.1e} dS {diff[2]:.1e}")
    return rows


def training(device: str, data: Path, work: Path, epochs: int) -> list[dict]:
    from ase.io import read

    from gnnff.training.config import validate_config
    from gnnff.training.trainer import Trainer

    rows = []
    for family in ("allegro", "allegro-attn"):
        states, times = {}, {}
        for i, dev in enumerate(("cpu", device)):
            cfg = validate_config(
                {
                    "data": {"train": str(data / "train.extxyz"),
                             "valid": str(data / "valid.extxyz")},
                    "model": {"family": family, "cutoff": 4.0, "num_layers": 2, "num_scalar": 16,
                              "num_tensor": 4, "mlp_hidden": [32]},
                    "training": {"epochs": epochs, "batch_size": 4, "seed": 3, "dtype": "float64",
                                 "device": dev, "progress": False},
                }
            )  # fmt: skip
            out = work / f"train_{family}_{i}_{dev}"
            trainer = Trainer(cfg, out, log=lambda *a: None)
            t0 = time.perf_counter()
            trainer.fit()
            times[f"{i}"] = time.perf_counter() - t0
            states[f"{i}"] = {k: v.detach().cpu() for k, v in trainer.model.state_dict().items()}
        diff = max(float((states["0"][k] - states["1"][k]).abs().max()) for k in states["0"])
        rows.append(
            {
                "family": family,
                "epochs": epochs,
                "frames": len(read(str(data / "train.extxyz"), ":")),
                "batch_size": 4,
                "max_abs_weight_diff": diff,
                "pass": diff <= TOL,
                "cpu_s_per_epoch": times["0"] / epochs,
                "device_s_per_epoch": times["1"] / epochs,
            }
        )
        print(f"  train {family}: max |dw| {diff:.1e}, s/epoch (with validation, export) "
              f"cpu {times['0'] / epochs:.2f} {device} {times['1'] / epochs:.2f}")  # fmt: skip
    return rows


def md(device: str, data: Path, work: Path, model: str) -> dict:
    from gnnff.calculators import GNNFFCalculator
    from gnnff.calculators.md import MDSettings, read_structure, run_md

    start = read_structure(str(data / "reference_md" / "a-SiO1.10_1000K.extxyz"), 60)
    settings = MDSettings(ensemble="nvt", temperature=1000.0, time_ps=0.2, seed=1,
                          traj_interval=50, check_interval=10)  # fmt: skip
    t0 = time.perf_counter()
    report = run_md(start, GNNFFCalculator(model, device=device), settings,
                    work / "md", progress=False)  # fmt: skip
    wall = time.perf_counter() - t0
    return {"atoms": len(start), "steps": 200, "s_per_step": wall / 200,
            "stability_index": report["stability_index"]}  # fmt: skip


def _time_calls(calc, atoms, reps: int) -> tuple[float, float]:
    """Median seconds per call after two warm-up calls, and peak CUDA memory (bytes)."""
    rng = np.random.default_rng(0)
    base = atoms.get_positions()
    atoms.calc = calc
    for _ in range(3):
        jiggle(atoms, base, rng)
        atoms.get_stress()
    if calc.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(reps):
        jiggle(atoms, base, rng)
        t0 = time.perf_counter()
        atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
        if calc.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated() if calc.device.type == "cuda" else 0
    return statistics.median(times), float(peak)


def timing(
    device: str, model: str, reps_list: list[tuple[int, int, int]], cpu_max_atoms: int
) -> list[dict]:
    from gnnff.calculators import GNNFFCalculator

    cell = sio2_cell(1536, seed=2)
    rows = []
    for rep in reps_list:
        atoms = cell.repeat(rep)
        n = len(atoms)
        modes = [(device, None)] + (
            [("cpu", None)] if device != "cpu" and n <= cpu_max_atoms else []
        )
        if rep == reps_list[-1]:
            modes.append((device, BLOCK_EDGES))  # bounded memory at the largest size
        for dtype in ("float32", "float64"):
            for dev, block in modes:
                calc = GNNFFCalculator(model, device=dev, dtype=dtype, max_block_edges=block)
                row = {"atoms": n, "dtype": dtype, "device": dev, "max_block_edges": block}
                try:
                    sec, peak = _time_calls(calc, atoms.copy(), reps=5 if n < 20000 else 3)
                except torch.OutOfMemoryError as exc:  # pragma: no cover - GPU only
                    rows.append({**row, "error": str(exc)[:200]})
                    continue
                finally:
                    del calc
                    if dev.startswith("cuda"):
                        torch.cuda.empty_cache()
                rows.append({**row, "threads": torch.get_num_threads(), "s_per_call": sec,
                             "us_per_atom": 1e6 * sec / n,
                             "peak_cuda_bytes_per_atom": peak / n if peak else None})  # fmt: skip
                print(f"  {n:>6} atoms {dtype} {dev} blocks={block}: {sec:.4f} s/call"
                      + (f", peak {peak / n / 1024:.1f} KiB/atom" if peak else ""))  # fmt: skip
    return rows


def neighbors(device: str, model: str, reps_list: list[tuple[int, int, int]]) -> list[dict]:
    """Host against device neighbour list, per call of the calculator (see the module doc)."""
    import importlib.util

    from gnnff.calculators import GNNFFCalculator

    if importlib.util.find_spec("vesin_torch") is None:
        return [{"skipped": 'vesin-torch is not installed (pip install "gnnff[gpu]")'}]
    cell = sio2_cell(1536, seed=2)
    rows = []
    for rep in reps_list:
        atoms = cell.repeat(rep)
        n = len(atoms)
        for dtype in ("float32", "float64"):
            calcs = {
                on: GNNFFCalculator(model, device=device, dtype=dtype, device_neighbor_list=on)
                for on in (False, True)
            }
            got = {on: _labels(c, atoms.copy()) for on, c in calcs.items()}
            diff = max(
                abs(got[True][0] - got[False][0]),
                *(
                    float(np.abs(a - b).max())
                    for a, b in zip(got[True][1:], got[False][1:], strict=True)
                ),
            )
            times: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(7):  # interleaved: host, device, host, device, ...
                for on, calc in calcs.items():
                    times[on].append(_time_calls(calc, atoms.copy(), reps=3)[0])
            host, dev = statistics.median(times[False]), statistics.median(times[True])
            rows.append({"atoms": n, "dtype": dtype, "device": device, "host_list_s": host,
                         "device_list_s": dev, "x_faster": host / dev, "max_abs_diff": diff,
                         "pass": dtype == "float32" or diff <= TOL})  # fmt: skip
            print(f"  {n:>6} atoms {dtype}: host list {host:.4f} s/call, device list "
                  f"{dev:.4f} s/call, x{host / dev:.2f}; max |diff| {diff:.1e}")  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True, help="folder with train.extxyz, "
                    "valid.extxyz and reference_md/ (gnnff data generate output)")  # fmt: skip
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--work", type=Path, help="scratch folder (default: OUT/work)")
    ap.add_argument("--quick", action="store_true", help="small sizes: checks the script")
    ap.add_argument(
        "--parts", nargs="+", default=["equality", "training", "md", "timing", "neighbors"]
    )
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or args.out / "work"
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "tolerance": TOL,
    }
    print(json.dumps(results))
    files = model_files(MODELS[:2] if args.quick else MODELS, work)
    results["model_files"] = {k: Path(v).name for k, v in files.items()}
    main_model = files["sio2-allegro-decorrelated"]
    for part in args.parts:
        t0 = time.perf_counter()
        print(f"== {part}", flush=True)
        try:
            if part == "equality":
                results[part] = equality(args.device, files)
            elif part == "training":
                results[part] = training(args.device, args.data, work, 1)
            elif part == "md":
                results[part] = md(args.device, args.data, work, main_model)
            elif part == "timing":
                reps = [(1, 1, 1)] if args.quick else [(1, 1, 1), (2, 2, 2), (4, 4, 2), (4, 4, 4)]
                results[part] = timing(args.device, main_model, reps, cpu_max_atoms=12288)
            elif part == "neighbors":
                reps = [(1, 1, 1)] if args.quick else [(1, 1, 1), (2, 2, 2)]
                results[part] = neighbors(args.device, main_model, reps)
        except Exception as exc:  # noqa: BLE001 - one broken part must not lose the others
            results[part] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"  {part} failed: {type(exc).__name__}: {exc}", flush=True)
        results[f"{part}_wall_s"] = time.perf_counter() - t0
        _save(args.out, results)
    ok = all(
        isinstance(results.get(p), list) and all(r.get("pass", True) for r in results[p])
        for p in ("equality", "training", "neighbors")
        if p in args.parts
    )
    print("PASS" if ok else "FAIL", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
