"""Side-by-side energy+forces speed of gnnff's Allegro-style model and nequip-allegro (issue 3).

    .venv-bench/bin/python benchmarks/bench_vs_nequip.py [--quick] [--json]

Both models are randomly initialised (speed does not depend on training) with matched
hyperparameters (``SIZES``) and called through their ASE calculators on amorphous-like SiO2
cells (random packing, 2.2 g/cm^3, pairs >= 1.5 A), 2 torch threads. Calls of the two codes
alternate (A B A B ...) so that load from other processes hits both alike; each call records
how busy the rest of the machine was (``timing.others_busy_pct``) and busy calls are dropped.
The neighbour-list share is the time of each calculator's input preparation (neighbour list +
tensor conversion) over its whole call.

nequip and allegro live in a separate environment, ``.venv-bench`` (benchmarks/nequip_env.sh
creates it); ``run()`` re-executes this file there when nequip is not importable here.

Matched: cutoff 5 A, 8 Bessel functions with polynomial envelope p=6, l_max 1, tensor irreps
0e+1o only (nequip ``parity=False``), 2 layers, per-path-and-channel tensor-product weights,
one hidden layer of the same width in the two-body, latent and readout MLPs (SiLU),
avg_num_neighbors 20, forces and stress by autograd, vesin neighbour list on both sides.
gnnff runs twice: its TorchScript model file (``gnnff_ms``, edge blocks of 20000, the CPU
default) and the same model as an AOTInductor package (``gnnff_aoti_ms``, ``.pt2``, one
pass; ``--no-aoti`` skips it); the three calculators take turns (A B C A B C ...).
Known differences: gnnff embeds species by concatenating learned vectors into the two-body
MLP input while allegro multiplies a Bessel projection by a per-pair-type embedding; gnnff
runs an exported TorchScript module, nequip its eager ``GraphModel`` (its fastest CPU path at
2 threads) with float64 positions and a ``model_dtype`` internal precision.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCH_PY = ROOT / ".venv-bench" / "bin" / "python"
ENV_SCRIPT = "benchmarks/nequip_env.sh"
THREADS = 2
CUTOFF = 5.0
NUM_BESSEL = 8
SPECIES = ["Si", "O"]
N_ATOMS = (192, 1536)
SIZES: dict[str, dict[str, int]] = {
    "small": {"num_scalar": 32, "num_tensor": 8, "hidden": 64},
    "medium": {"num_scalar": 64, "num_tensor": 16, "hidden": 128},
}
DISPLACEMENT = 1e-3  # A: random jiggle before every call so no result can be reused


def amorphous_sio2(n_atoms: int, seed: int = 0):
    """Random SiO2 packing, ``n_atoms`` atoms (2:1 O:Si), 2.2 g/cm^3, pairs >= 1.5 A."""
    from gnnff.data.structures import composition_counts, random_packing

    counts = composition_counts({"Si": 1, "O": 2}, n_atoms)
    return random_packing(counts, 2.2, 1.5, np.random.default_rng(seed))


def gnnff_calculator(size: str, dtype: str, workdir: Path, aoti: bool = False):
    """gnnff ``GNNFFCalculator`` on a freshly exported random model; also its parameter count.
    ``aoti``: also a calculator on the same model exported as an AOTInductor package
    (``.pt2``, compiled for CPU; about a minute), else None in its place."""
    import torch

    from gnnff.calculators import GNNFFCalculator
    from gnnff.potentials import build_model, export_model

    s = SIZES[size]
    torch.manual_seed(0)
    model = build_model(
        {
            "family": "allegro",
            "species": SPECIES,
            "cutoff": CUTOFF,
            "l_max": 1,
            "num_layers": 2,
            "num_scalar": s["num_scalar"],
            "num_tensor": s["num_tensor"],
            "mlp_hidden": [s["hidden"]],
            "num_bessel": NUM_BESSEL,
            "poly_p": 6,
            "avg_num_neighbors": 20.0,
        }
    )
    n_params = sum(p.numel() for p in model.parameters())
    path = workdir / f"gnnff_{size}_{dtype}.pt"
    export_model(model, path, dtype=dtype)
    package = None
    if aoti:
        package = GNNFFCalculator(
            export_model(model, path.with_suffix(".pt2"), dtype=dtype, format="aoti")
        )
    return GNNFFCalculator(path), package, n_params


def allegro_model(size: str, dtype: str, seed: int = 0, **extra):
    """A randomly initialised nequip ``AllegroModel`` with the hyperparameters matched to gnnff's
    (``SIZES[size]``, module docstring); ``extra`` overrides keywords (avg_num_neighbors, per-type
    energy shifts / scales)."""
    from allegro.model import AllegroModel

    s = SIZES[size]
    kwargs = {
        "seed": seed,
        "model_dtype": dtype,
        "type_names": SPECIES,
        "r_max": CUTOFF,
        "l_max": 1,
        "parity": False,
        "radial_chemical_embed": {
            "_target_": "allegro.nn.TwoBodyBesselScalarEmbed",
            "num_bessels": NUM_BESSEL,
            "polynomial_cutoff_p": 6,
        },
        "scalar_embed_mlp_hidden_layers_depth": 1,
        "scalar_embed_mlp_hidden_layers_width": s["hidden"],
        "num_layers": 2,
        "num_scalar_features": s["num_scalar"],
        "num_tensor_features": s["num_tensor"],
        "allegro_mlp_hidden_layers_depth": 1,
        "allegro_mlp_hidden_layers_width": s["hidden"],
        "readout_mlp_hidden_layers_depth": 1,
        "readout_mlp_hidden_layers_width": s["hidden"],
        "avg_num_neighbors": 20.0,
        **extra,
    }
    return AllegroModel(**kwargs)


def nequip_calculator(size: str, dtype: str):
    """nequip ``NequIPCalculator`` around an eager, randomly initialised ``AllegroModel``;
    also its parameter count.

    nequip's global-state setup sets torch's default dtype to float64 (its data conversion
    relies on that; gnnff's calculator casts explicitly, so it is unaffected) and changes the
    TorchScript fusion strategy for the whole process; the latter is restored so the gnnff
    TorchScript model runs as it would on its own.
    """
    import torch
    from nequip.integrations.ase import NequIPCalculator
    from nequip.integrations.utils import basic_transforms
    from nequip.utils.global_state import set_global_state

    fusion = torch.jit.set_fusion_strategy([("STATIC", 2), ("DYNAMIC", 10)])
    set_global_state()
    torch.jit.set_fusion_strategy(fusion)

    model = allegro_model(size, dtype)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    transforms = basic_transforms(
        model.metadata, CUTOFF, SPECIES, {t: t for t in SPECIES}, neighborlist_backend="vesin"
    )
    return NequIPCalculator(model=model, device="cpu", transforms=transforms), n_params


def wait_for_quiet(max_wait_s: float, busy_pct: float = 20.0) -> float:
    """Wait (at most ``max_wait_s``) until other processes use under ``busy_pct`` % of the
    machine over one second; return the seconds waited. Two-thread calls slow down 10-100x
    while another process holds a core (threads stall at every parallel region)."""
    import psutil

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait_s:
        if psutil.cpu_percent(interval=1.0) < busy_pct:
            break
    return round(time.perf_counter() - t0, 1)


def compare(atoms, calcs: dict, repeats: int, warmup: int, busy_threshold: float) -> dict:
    """Interleaved (ABAB) timing of ``calcs`` (name -> ASE calculator) on ``atoms``: whole
    energy+forces calls and, separately, input preparation (neighbour list)."""
    from ase.calculators.calculator import all_changes

    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from timing import others_busy_pct, summarize

    rng = np.random.default_rng(1)
    base = atoms.get_positions()
    work = atoms.copy()

    def full_call(calc):
        def fn():
            work.set_positions(base + rng.normal(scale=DISPLACEMENT, size=base.shape))
            calc.calculate(work, ["energy", "forces"], all_changes)
            return calc.results["forces"]

        return fn

    def inputs_call(calc):
        if hasattr(calc, "model_inputs"):  # gnnff
            return lambda: calc.model_inputs(work)
        return lambda: calc.atoms_to_data(work)  # nequip: from_ase + neighbour-list transform

    fulls = {name: full_call(c) for name, c in calcs.items()}
    preps = {name: inputs_call(c) for name, c in calcs.items()}
    for _ in range(warmup):
        for fn in fulls.values():
            fn()
    full_s: dict[str, list] = {name: [] for name in calcs}
    prep_s: dict[str, list] = {name: [] for name in calcs}
    for _ in range(repeats):
        for name in calcs:
            full_s[name].append(others_busy_pct(fulls[name]))
            prep_s[name].append(others_busy_pct(preps[name]))
    return {
        name: {
            "call": summarize(full_s[name], busy_threshold),
            "nl": summarize(prep_s[name], busy_threshold),
        }
        for name in calcs
    }


def run_here(
    quick: bool = False,
    dtypes: tuple[str, ...] | None = None,
    busy_threshold: float = 15.0,
    atoms: tuple[int, ...] | None = None,
    aoti: bool = True,
    sizes: tuple[str, ...] | None = None,
) -> list[dict]:
    """The benchmark in this interpreter (needs nequip, allegro and gnnff importable)."""
    import nequip
    import torch
    from allegro import _version as allegro_version

    torch.set_num_threads(THREADS)
    sizes = sizes or (("small",) if quick else tuple(SIZES))
    n_list = atoms or ((192,) if quick else N_ATOMS)
    dtypes = dtypes or (("float32",) if quick else ("float32", "float64"))
    rows: list[dict] = []
    structures = {n: amorphous_sio2(n) for n in n_list}
    versions = (
        f"torch {torch.__version__}, nequip {nequip.__version__}, "
        f"allegro {allegro_version.__version__}"
    )
    # float64 only for the small model: it doubles the run time
    cases = [(s, d) for s in sizes for d in dtypes if d == "float32" or s == "small"]
    with tempfile.TemporaryDirectory() as tmp:
        # every gnnff model is exported before nequip initialises its global state: that
        # switches e3nn to code-generated modules, which gnnff's export cannot deep-copy
        gnnff_calcs = {case: gnnff_calculator(*case, Path(tmp), aoti) for case in cases}
        for size, dtype in cases:
            g_calc, g_aoti, g_params = gnnff_calcs[(size, dtype)]
            n_calc, n_params = nequip_calculator(size, dtype)
            for n, atoms in structures.items():
                big = n > 500
                repeats = 3 if quick else (9 if big else 15)
                # warm-up >= 4: gnnff's TorchScript profiling executor specialises over
                # its first 3 calls (~10x slower calls)
                waited = wait_for_quiet(0.0 if quick else 30.0)
                contenders = {"gnnff": g_calc, "nequip": n_calc}
                if g_aoti is not None:
                    contenders["gnnff_aoti"] = g_aoti
                res = compare(
                    atoms,
                    contenders,
                    repeats,
                    warmup=4,
                    busy_threshold=busy_threshold,
                )
                e_dir = g_calc.model_inputs(atoms)["edge_index"].shape[1]
                g, q = res["gnnff"], res["nequip"]
                g_rate = n / g["call"]["median_s"]
                q_rate = n / q["call"]["median_s"]
                rows.append(
                    {
                        "bench": "vs_nequip",
                        "model": size,
                        "dtype": dtype,
                        "atoms": n,
                        "neigh_per_atom": round(e_dir / n, 1),
                        "gnnff_params": g_params,
                        "nequip_params": n_params,
                        "gnnff_ms": round(1e3 * g["call"]["median_s"], 2),
                        "nequip_ms": round(1e3 * q["call"]["median_s"], 2),
                        "gnnff_atoms_s": round(g_rate, 1),
                        "nequip_atoms_s": round(q_rate, 1),
                        "ratio_gnnff_nequip": round(g_rate / q_rate, 3),
                        "gnnff_nl_pct": round(100 * g["nl"]["median_s"] / g["call"]["median_s"], 1),
                        "nequip_nl_pct": round(
                            100 * q["nl"]["median_s"] / q["call"]["median_s"], 1
                        ),
                        **_aoti_columns(res, n, q_rate),
                        "kept": f"{g['call']['kept']}/{q['call']['kept']} of {repeats}",
                        "max_others_pct": max(
                            g["call"]["max_others_pct"], q["call"]["max_others_pct"]
                        ),
                        "all_busy": g["call"]["all_busy"] or q["call"]["all_busy"],
                        "waited_s": waited,
                        "threads": THREADS,
                        "versions": versions,
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def _aoti_columns(res: dict, n_atoms: int, nequip_rate: float) -> dict:
    """The gnnff AOTInductor package's columns of a row (none when it was not run)."""
    if "gnnff_aoti" not in res:
        return {}
    call = res["gnnff_aoti"]["call"]
    rate = n_atoms / call["median_s"]
    return {
        "gnnff_aoti_ms": round(1e3 * call["median_s"], 2),
        "ratio_gnnff_aoti_nequip": round(rate / nequip_rate, 3),
        "aoti_vs_torchscript": round(call["median_s"] / res["gnnff"]["call"]["median_s"], 3),
    }


def _nequip_importable() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("nequip", "allegro"))


def run(quick: bool = False) -> list[dict]:
    """Benchmark rows (``make bench``). Outside ``.venv-bench`` this re-runs the file under
    ``.venv-bench/bin/python``; without that environment it returns one row saying how to
    create it."""
    if _nequip_importable():
        return run_here(quick=quick)
    if not BENCH_PY.exists():
        return [
            {
                "bench": "vs_nequip",
                "skipped": f"nequip/allegro not importable and no {BENCH_PY};"
                f" create it with `bash {ENV_SCRIPT}` (about 1 min, 1.6 GB)",
            }
        ]
    cmd = [str(BENCH_PY), str(Path(__file__).resolve()), "--json"] + (["--quick"] * quick)
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), PYTHONWARNINGS="ignore")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-5:]
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {proc.returncode}): " + " | ".join(tail))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]
    if not lines:
        raise RuntimeError(f"{' '.join(cmd)} printed no JSON rows; stderr: {proc.stderr[-500:]}")
    rows = json.loads(lines[-1])
    for r in rows:
        r["subprocess_s"] = round(time.perf_counter() - t0, 1)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="small model, 192 atoms, 3 calls")
    ap.add_argument("--json", action="store_true", help="print the rows as one JSON line")
    ap.add_argument(
        "--dtype",
        nargs="*",
        choices=["float32", "float64"],
        help="dtypes to run (default: float32 and, for the small model, float64)",
    )
    ap.add_argument("--atoms", type=int, nargs="*", help=f"cell sizes (default {N_ATOMS})")
    ap.add_argument("--sizes", nargs="*", choices=list(SIZES), help="model sizes (default all)")
    ap.add_argument(
        "--no-aoti",
        action="store_true",
        help="skip gnnff's AOTInductor package (compiling it takes about a minute per model)",
    )
    args = ap.parse_args(argv)
    here_only = args.dtype or args.atoms or args.sizes or args.no_aoti
    if here_only and not _nequip_importable():
        ap.error(
            f"--dtype/--atoms/--sizes/--no-aoti need nequip in this interpreter; run it with "
            f"{BENCH_PY}"
        )
    if here_only:
        rows = run_here(
            quick=args.quick,
            dtypes=tuple(args.dtype) if args.dtype else None,
            atoms=tuple(args.atoms) if args.atoms else None,
            aoti=not args.no_aoti,
            sizes=tuple(args.sizes) if args.sizes else None,
        )
    else:
        rows = run(quick=args.quick)
    if args.json:
        print(json.dumps(rows))
    else:
        sys.path.insert(0, str(HERE))
        from run_all import format_table

        print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
