"""Side-by-side energy+forces speed and memory of gnnff's Allegro-style model and nequip-allegro
(issue 3; AOTInductor on both sides and 12k atoms: issue 28).

    .venv-bench/bin/python benchmarks/bench_vs_nequip.py [--quick] [--json]
    .venv-bench/bin/python benchmarks/bench_vs_nequip.py --cache DIR --memory --out FILE.json

Both models are randomly initialised (speed does not depend on training) with matched
hyperparameters (``SIZES``) and called through their ASE calculators on amorphous-like SiO2
cells (random packing, 2.2 g/cm^3, pairs >= 1.5 A; 12288 atoms = the 1536-atom cell repeated
2 x 2 x 2), 2 torch threads. Four contenders, called in turn (A B C D A B C D ...) so that load
from other processes hits all alike; each call records how busy the rest of the machine was
(``timing.others_busy_pct``) and busy calls are dropped:

* ``gnnff``: its TorchScript model file through ``GNNFFCalculator`` as a user gets it (edge
  blocks of 20000, the CPU default): gnnff's default path;
* ``gnnff_aoti``: the same model as an AOTInductor package (``.pt2``, one pass);
* ``nequip``: nequip's eager ``GraphModel`` in ``NequIPCalculator``;
* ``nequip_aoti``: the same model compiled by nequip's own AOTInductor path for the ASE
  target (what ``nequip-compile --mode aotinductor --target ase --device cpu`` does, run on
  the in-memory model: ``compile_nequip_aoti``), loaded with
  ``NequIPCalculator.from_compiled_model``.

The ratio of the benchmark is gnnff's default path over nequip's faster mode at that size and
dtype (``nequip_best``). The neighbour-list share is the time of each calculator's input
preparation (neighbour list + tensor conversion) over its whole call. The timing process holds
all four calculators, so gnnff's allocator setting (``keep_freed_memory``: glibc keeps freed
memory in the heap) applies to nequip's calls there too.

``--memory``: peak memory per atom of each contender, each in a fresh process of its own
(``memory_child``): load the (cached) model file, one warm-up call on a 96-atom cell, then
reset the peak-RSS counter (``/proc/self/clear_refs``) and make ``--memory-calls`` calls on the
cell (positions jiggled, as MD steps); kB/atom = (peak RSS over the calls - RSS before them) /
atoms. Memory does not depend on the machine's load; the child's time per call is recorded too.

nequip and allegro live in a separate environment, ``.venv-bench`` (benchmarks/nequip_env.sh
creates it); ``run()`` re-executes this file there when nequip is not importable here.

Matched: cutoff 5 A, 8 Bessel functions with polynomial envelope p=6, l_max 1, tensor irreps
0e+1o only (nequip ``parity=False``), 2 layers, per-path-and-channel tensor-product weights,
one hidden layer of the same width in the two-body, latent and readout MLPs (SiLU),
avg_num_neighbors 20, forces and stress (virial) by autograd on both sides, vesin neighbour
list on both sides. Known differences: gnnff embeds species by concatenating learned vectors
into the two-body MLP input while allegro multiplies a Bessel projection by a per-pair-type
embedding; nequip takes float64 positions and runs at its ``model_dtype`` inside.
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
BASE_CELL = 1536  # atoms; larger multiples are this cell repeated
N_ATOMS = (BASE_CELL, 8 * BASE_CELL)
MEDIUM_MAX_ATOMS = BASE_CELL  # the medium model only up to this size by default (run time)
SIZES: dict[str, dict[str, int]] = {
    "small": {"num_scalar": 32, "num_tensor": 8, "hidden": 64},
    "medium": {"num_scalar": 64, "num_tensor": 16, "hidden": 128},
}
CONTENDERS = ("gnnff", "gnnff_aoti", "nequip", "nequip_aoti")  # the A B C D order
DISPLACEMENT = 1e-3  # A: random jiggle before every call so no result can be reused
MEMORY_CALLS = 5


def amorphous_sio2(n_atoms: int, seed: int = 0):
    """Random SiO2 packing, ``n_atoms`` atoms (2:1 O:Si), 2.2 g/cm^3, pairs >= 1.5 A."""
    from gnnff.data.structures import composition_counts, random_packing

    counts = composition_counts({"Si": 1, "O": 2}, n_atoms)
    return random_packing(counts, 2.2, 1.5, np.random.default_rng(seed))


def _grid(k: int) -> tuple[int, int, int]:
    """Three repeat counts with product ``k``, as equal as the factors allow (8 -> 2, 2, 2)."""
    best = (k, 1, 1)
    for a in range(1, k + 1):
        for b in range(1, k // a + 1):
            if k % (a * b) == 0:
                cand = tuple(sorted((a, b, k // (a * b)), reverse=True))
                if max(cand) < max(best):
                    best = cand
    return best  # type: ignore[return-value]


def structure(n_atoms: int):
    """The benchmark cell of ``n_atoms`` atoms: a multiple of ``BASE_CELL`` is the
    ``BASE_CELL``-atom packing repeated (``_grid``), any other size its own packing."""
    if n_atoms > BASE_CELL and n_atoms % BASE_CELL == 0:
        return amorphous_sio2(BASE_CELL).repeat(_grid(n_atoms // BASE_CELL))
    return amorphous_sio2(n_atoms)


def _gnnff_model(size: str):
    import torch

    from gnnff.potentials import build_model

    s = SIZES[size]
    torch.manual_seed(0)
    return build_model(
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


def gnnff_files(size: str, dtype: str, workdir: Path, aoti: bool = False) -> dict[str, Path]:
    """Export gnnff's random model (seed 0) as a TorchScript file and, with ``aoti``, as an
    AOTInductor package (about a minute to compile) into ``workdir``; files already there are
    reused. Must run before nequip's global state is set (``nequip_calculator``): that switches
    e3nn to code-generated modules, which gnnff's export cannot deep-copy."""
    from gnnff.potentials import export_model

    paths = {"gnnff": workdir / f"gnnff_{size}_{dtype}.pt"}
    if aoti:
        paths["gnnff_aoti"] = workdir / f"gnnff_{size}_{dtype}.pt2"
    model = None
    for name, path in paths.items():
        if not path.exists():
            model = model or _gnnff_model(size)
            fmt = {"format": "aoti"} if name == "gnnff_aoti" else {}
            export_model(model, path, dtype=dtype, **fmt)
    return paths


def gnnff_calculator(size: str, dtype: str, workdir: Path, aoti: bool = False):
    """gnnff ``GNNFFCalculator`` on the exported random model; also its parameter count.
    ``aoti``: also a calculator on the same model's AOTInductor package (``.pt2``), else None
    in its place."""
    from gnnff.calculators import GNNFFCalculator

    paths = gnnff_files(size, dtype, workdir, aoti)
    calc = GNNFFCalculator(paths["gnnff"])
    n_params = sum(p.numel() for p in calc.module.parameters())
    package = GNNFFCalculator(paths["gnnff_aoti"]) if aoti else None
    return calc, package, n_params


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


def _nequip_global_state() -> None:
    """nequip's global-state setup. It sets torch's default dtype to float64 (its data
    conversion relies on that; gnnff's calculator casts explicitly, so it is unaffected) and
    changes the TorchScript fusion strategy for the whole process; the latter is restored so
    the gnnff TorchScript model runs as it would on its own."""
    import torch
    from nequip.utils.global_state import set_global_state

    fusion = torch.jit.set_fusion_strategy([("STATIC", 2), ("DYNAMIC", 10)])
    set_global_state()
    torch.jit.set_fusion_strategy(fusion)


def nequip_calculator(size: str, dtype: str):
    """nequip ``NequIPCalculator`` around an eager, randomly initialised ``AllegroModel``;
    also its parameter count."""
    from nequip.integrations.ase import NequIPCalculator
    from nequip.integrations.utils import basic_transforms

    _nequip_global_state()
    model = allegro_model(size, dtype)
    model.eval()
    n_params = sum(p.numel() for p in model.parameters())
    transforms = basic_transforms(
        model.metadata, CUTOFF, SPECIES, {t: t for t in SPECIES}, neighborlist_backend="vesin"
    )
    return NequIPCalculator(model=model, device="cpu", transforms=transforms), n_params


def compile_nequip_aoti(size: str, dtype: str, path: Path, n_atoms: int = BASE_CELL) -> float:
    """Compile nequip's random ``AllegroModel`` (``allegro_model(size, dtype)``) with nequip's
    AOTInductor export for its ASE calculator into ``path`` (``*.nequip.pt2``); return the
    compile seconds.

    This is ``nequip-compile --mode aotinductor --target ase --device cpu`` (nequip 0.19.1,
    ``nequip/scripts/compile.py``) minus the checkpoint: the same global state, metadata,
    input/output fields, dynamic node and edge counts (2..inf, one frame), compile seed and
    numerical check against the eager model, with a ``n_atoms``-atom benchmark cell as the
    example input (the CLI takes one from the training data). No modifiers: nequip's
    accelerations (Triton, cuEquivariance) are GPU-only."""
    import torch
    from nequip.data import from_ase
    from nequip.integrations.utils import basic_transforms
    from nequip.scripts._compile_utils import AOTI_ASE_TARGET, COMPILE_TARGET_DICT
    from nequip.scripts.compile import _AOT_METADATA_KEY, _COMPILE_SEED
    from nequip.utils.aot import aot_export_model
    from nequip.utils.aoti_metadata import (
        NEQUIP_AOTI_INPUTS_KEY,
        NEQUIP_AOTI_OUTPUTS_KEY,
        serialize_aoti_keys,
    )
    from nequip.utils.global_state import get_latest_global_state

    if not str(path).endswith(".nequip.pt2"):
        raise ValueError(f"nequip loads AOTInductor packages named *.nequip.pt2, not {path}")
    _nequip_global_state()
    model = allegro_model(size, dtype)
    model.eval()
    target = COMPILE_TARGET_DICT[AOTI_ASE_TARGET]
    data = from_ase(structure(n_atoms))
    for t in basic_transforms(
        model.metadata, CUTOFF, SPECIES, {t: t for t in SPECIES}, neighborlist_backend="vesin"
    ):
        data = t(data)
    data = target["data_settings"](data)
    dim = torch.export.dynamic_shapes.Dim
    batch_map = target["batch_map_settings"](
        {
            "graph": dim("num_frames", min=2, max=torch.inf),
            "node": dim("num_nodes", min=2, max=torch.inf),
            "edge": dim("num_edges", min=2, max=torch.inf),
        }
    )
    metadata = {**model.metadata, **get_latest_global_state(only_metadata_related=True)}
    metadata = {k: str(int(v)) if isinstance(v, bool) else v for k, v in metadata.items()}
    metadata[NEQUIP_AOTI_INPUTS_KEY] = serialize_aoti_keys(target["input"])
    metadata[NEQUIP_AOTI_OUTPUTS_KEY] = serialize_aoti_keys(target["output"])
    t0 = time.perf_counter()
    aot_export_model(
        model=model,
        device="cpu",
        input_fields=target["input"],
        output_fields=target["output"],
        data=data,
        batch_map=batch_map,
        output_path=str(path),
        inductor_configs={_AOT_METADATA_KEY: {k: str(v) for k, v in metadata.items()}},
        seed=_COMPILE_SEED,
    )
    return time.perf_counter() - t0


def nequip_aoti_path(size: str, dtype: str, workdir: Path) -> Path:
    return workdir / f"allegro_{size}_{dtype}.nequip.pt2"


def ensure_nequip_aoti(size: str, dtype: str, workdir: Path) -> Path:
    """``nequip_aoti_path``, compiled first (in a subprocess, so that this process's state is
    not changed by the export) when it is not there yet."""
    path = nequip_aoti_path(size, dtype, workdir)
    if not path.exists():
        cmd = [sys.executable, __file__, "--compile-nequip", size, dtype, str(path)]
        proc = subprocess.run(cmd, cwd=ROOT, env=_child_env(), capture_output=True, text=True)
        if proc.returncode != 0 or not path.exists():
            raise RuntimeError(f"nequip AOTI compile failed: {proc.stderr[-3000:]}")
        print(proc.stdout.strip().splitlines()[-1], file=sys.stderr, flush=True)
    return path


def nequip_aoti_calculator(path: Path):
    """``NequIPCalculator.from_compiled_model`` on a ``*.nequip.pt2`` (vesin neighbour list)."""
    import torch
    from nequip.integrations.ase import NequIPCalculator

    _nequip_global_state()
    fusion = torch.jit.set_fusion_strategy([("STATIC", 2), ("DYNAMIC", 10)])
    calc = NequIPCalculator.from_compiled_model(
        str(path), device="cpu", neighborlist_backend="vesin"
    )
    torch.jit.set_fusion_strategy(fusion)
    return calc


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


def _jiggled_call(calc, atoms, rng):
    """A function making one energy+forces call of ``calc`` on ``atoms`` with fresh positions
    (``DISPLACEMENT``-A jiggle of the original ones); returns the forces."""
    from ase.calculators.calculator import all_changes

    base = atoms.get_positions()
    work = atoms.copy()

    def fn():
        work.set_positions(base + rng.normal(scale=DISPLACEMENT, size=base.shape))
        calc.calculate(work, ["energy", "forces"], all_changes)
        return calc.results["forces"]

    return fn, work


def compare(atoms, calcs: dict, repeats: int, warmup: int, busy_threshold: float) -> dict:
    """Interleaved (A B C D) timing of ``calcs`` (name -> ASE calculator) on ``atoms``: whole
    energy+forces calls and, separately, input preparation (neighbour list)."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    from timing import others_busy_pct, summarize

    rng = np.random.default_rng(1)
    fulls, preps = {}, {}
    for name, calc in calcs.items():
        fulls[name], work = _jiggled_call(calc, atoms, rng)
        if hasattr(calc, "model_inputs"):  # gnnff
            preps[name] = lambda c=calc, w=work: c.model_inputs(w)
        else:  # nequip: from_ase + neighbour-list transform
            preps[name] = lambda c=calc, w=work: c.atoms_to_data(w)
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


def default_cases(
    sizes: tuple[str, ...], dtypes: tuple[str, ...], n_list: tuple[int, ...], all_pairs: bool
) -> list[tuple[str, str, tuple[int, ...]]]:
    """(model size, dtype, cell sizes) to run. Unless ``all_pairs``, float64 only for the
    small model and the medium model only up to ``MEDIUM_MAX_ATOMS`` (run time)."""
    cases = []
    for s in sizes:
        for d in dtypes:
            if not all_pairs and d == "float64" and s != "small":
                continue
            ns = n_list if all_pairs or s == "small" else tuple(
                n for n in n_list if n <= MEDIUM_MAX_ATOMS
            )  # fmt: skip
            if ns:
                cases.append((s, d, ns))
    return cases


def _row(size: str, dtype: str, n: int, res: dict, extra: dict) -> dict:
    """One table row from a ``compare`` result (times, rates, ratios, busy bookkeeping)."""
    rate = {name: n / r["call"]["median_s"] for name, r in res.items()}
    row: dict = {"bench": "vs_nequip", "model": size, "dtype": dtype, "atoms": n, **extra}
    for name, r in res.items():
        row[f"{name}_ms"] = round(1e3 * r["call"]["median_s"], 2)
    for name in res:
        row[f"{name}_atoms_s"] = round(rate[name], 1)
    nequip_modes = [m for m in ("nequip", "nequip_aoti") if m in res]
    best = max(nequip_modes, key=lambda m: rate[m])
    row["nequip_best"] = best
    row["ratio_default_vs_nequip_best"] = round(rate["gnnff"] / rate[best], 3)
    row["ratio_gnnff_nequip"] = round(rate["gnnff"] / rate["nequip"], 3)  # vs eager
    if "gnnff_aoti" in res:
        row["ratio_gnnff_aoti_vs_nequip_best"] = round(rate["gnnff_aoti"] / rate[best], 3)
        row["aoti_vs_torchscript"] = round(
            res["gnnff_aoti"]["call"]["median_s"] / res["gnnff"]["call"]["median_s"], 3
        )
    for name, r in res.items():
        row[f"{name}_nl_pct"] = round(100 * r["nl"]["median_s"] / r["call"]["median_s"], 1)
    row["kept"] = "/".join(str(r["call"]["kept"]) for r in res.values())
    row["max_others_pct"] = max(r["call"]["max_others_pct"] for r in res.values())
    row["all_busy"] = any(r["call"]["all_busy"] for r in res.values())
    return row


def run_here(
    quick: bool = False,
    dtypes: tuple[str, ...] | None = None,
    busy_threshold: float = 15.0,
    atoms: tuple[int, ...] | None = None,
    aoti: bool = True,
    sizes: tuple[str, ...] | None = None,
    cache: Path | None = None,
    all_pairs: bool = False,
) -> list[dict]:
    """The timing benchmark in this interpreter (needs nequip, allegro and gnnff importable).
    ``cache``: folder for the model files (reused when there), else a temporary one."""
    import nequip
    import torch
    from allegro import _version as allegro_version

    torch.set_num_threads(THREADS)
    sizes = sizes or (("small",) if quick else tuple(SIZES))
    n_list = atoms or ((192,) if quick else N_ATOMS)
    dtypes = dtypes or (("float32",) if quick else ("float32", "float64"))
    cases = default_cases(sizes, dtypes, n_list, all_pairs)
    structures = {n: structure(n) for n in sorted({n for *_, ns in cases for n in ns})}
    versions = (
        f"torch {torch.__version__}, nequip {nequip.__version__}, "
        f"allegro {allegro_version.__version__}"
    )
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(cache or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        gnnff_calcs = {(s, d): gnnff_calculator(s, d, workdir, aoti) for s, d, _ in cases}
        nequip_files = {(s, d): ensure_nequip_aoti(s, d, workdir) for s, d, _ in cases if aoti}
        for size, dtype, ns in cases:
            g_calc, g_aoti, g_params = gnnff_calcs[(size, dtype)]
            n_calc, n_params = nequip_calculator(size, dtype)
            contenders = {"gnnff": g_calc, "gnnff_aoti": g_aoti, "nequip": n_calc}
            if aoti:
                contenders["nequip_aoti"] = nequip_aoti_calculator(nequip_files[(size, dtype)])
            contenders = {k: v for k, v in contenders.items() if v is not None}
            for n in ns:
                cell = structures[n]
                repeats = 3 if quick else (7 if n > 4 * BASE_CELL else 11)
                # warm-up >= 4: gnnff's TorchScript profiling executor specialises over
                # its first 3 calls (~10x slower calls)
                waited = wait_for_quiet(0.0 if quick else 30.0)
                res = compare(cell, contenders, repeats, warmup=4, busy_threshold=busy_threshold)
                e_dir = g_calc.model_inputs(cell)["edge_index"].shape[1]
                extra = {
                    "neigh_per_atom": round(e_dir / n, 1),
                    "gnnff_params": g_params,
                    "nequip_params": n_params,
                    "repeats": repeats,
                }
                row = _row(size, dtype, n, res, extra)
                row.update(waited_s=waited, threads=THREADS, versions=versions)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def _status_kb(field: str) -> int:
    """``field`` of /proc/self/status in kB (VmRSS: resident now, VmHWM: peak resident)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current resident set (Linux ``clear_refs`` 5); False if refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def memory_child(name: str, size: str, dtype: str, n_atoms: int, workdir: Path, calls: int):
    """Peak memory per atom (and time per call) of contender ``name`` alone in this process:
    load its model file from ``workdir`` (prepared by the parent), one warm-up call on a
    96-atom cell, reset the peak counter, ``calls`` energy+forces calls on the ``n_atoms``
    cell with jiggled positions. gnnff's contenders never import nequip here."""
    import torch

    sys.path.insert(0, str(HERE))
    from timing import others_busy_pct, summarize

    torch.set_num_threads(THREADS)
    if name.startswith("gnnff"):
        from gnnff.calculators import GNNFFCalculator

        suffix = ".pt2" if name == "gnnff_aoti" else ".pt"
        calc = GNNFFCalculator(workdir / f"gnnff_{size}_{dtype}{suffix}")
    elif name == "nequip":
        calc, _ = nequip_calculator(size, dtype)
    else:
        calc = nequip_aoti_calculator(nequip_aoti_path(size, dtype, workdir))
    rng = np.random.default_rng(0)
    warm, _ = _jiggled_call(calc, amorphous_sio2(96, seed=5), rng)
    warm()
    fn, _ = _jiggled_call(calc, structure(n_atoms), rng)
    before = _status_kb("VmRSS")
    reset = _reset_peak_rss()
    samples, first_peak = [], 0
    for k in range(calls):
        samples.append(others_busy_pct(fn))
        if k == 0:
            first_peak = _status_kb("VmHWM")
    peak = _status_kb("VmHWM")
    steady = summarize(samples[1:] or samples)
    return {
        "contender": name,
        "model": size,
        "dtype": dtype,
        "atoms": n_atoms,
        "calls": calls,
        "peak_reset": reset,
        "first_call_peak_MB": round((first_peak - before) / 1024.0, 1),
        "peak_MB": round((peak - before) / 1024.0, 1),
        "kB_per_atom": round((peak - before) / n_atoms, 1),
        "s_per_call": round(steady["median_s"], 4),
        "quiet_calls": steady["kept"],
    }


def _child_env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS=str(THREADS), PYTHONWARNINGS="ignore")


def run_memory(
    cases: list[tuple[str, str, tuple[int, ...]]],
    workdir: Path,
    contenders: tuple[str, ...] = CONTENDERS,
    calls: int = MEMORY_CALLS,
) -> list[dict]:
    """``memory_child`` of every contender, case and cell size, each in a fresh process of
    this interpreter; model files are prepared in ``workdir`` first."""
    workdir.mkdir(parents=True, exist_ok=True)
    for size, dtype, _ in cases:
        gnnff_files(size, dtype, workdir, aoti="gnnff_aoti" in contenders)
        if "nequip_aoti" in contenders:
            ensure_nequip_aoti(size, dtype, workdir)
    out = []
    for size, dtype, ns in cases:
        for n in ns:
            for name in contenders:
                cmd = [sys.executable, __file__, "--memory-child", name, size, dtype, str(n)]
                cmd += [str(workdir), str(calls)]
                proc = subprocess.run(
                    cmd, cwd=ROOT, env=_child_env(), capture_output=True, text=True
                )
                if proc.returncode != 0:
                    raise RuntimeError(f"{' '.join(cmd[2:])} failed:\n{proc.stderr[-3000:]}")
                out.append(json.loads(proc.stdout.strip().splitlines()[-1]))
                print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    return out


def join_memory(rows: list[dict], memory: list[dict]) -> None:
    """Add each contender's ``*_kB_per_atom`` to the timing row of the same model, dtype and
    cell size, and the memory ratio of nequip's faster mode to gnnff's default."""
    for row in rows:
        for m in memory:
            if (m["model"], m["dtype"], m["atoms"]) == (row["model"], row["dtype"], row["atoms"]):
                row[f"{m['contender']}_kB_per_atom"] = m["kB_per_atom"]
        best = row.get("nequip_best", "nequip")
        if f"{best}_kB_per_atom" in row and row.get("gnnff_kB_per_atom"):
            row["memory_nequip_best_over_default"] = round(
                row[f"{best}_kB_per_atom"] / row["gnnff_kB_per_atom"], 1
            )


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
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=_child_env(), capture_output=True, text=True)
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


def markdown_table(rows: list[dict]) -> str:
    """The docs' table: atoms/s of each contender, gnnff's default over nequip's faster mode,
    and kB/atom of each contender (where measured)."""
    head = (
        "| model | dtype | atoms | gnnff TorchScript (default) atoms/s | gnnff AOTI atoms/s "
        "| nequip eager atoms/s | nequip AOTI atoms/s | default / nequip fastest "
        "| kB/atom: gnnff TS, gnnff AOTI, nequip eager, nequip AOTI |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:

        def rate(name: str, r: dict = r) -> str:
            v = r.get(f"{name}_atoms_s")
            return "-" if v is None else f"{v:,.0f}"

        def kb(name: str, r: dict = r) -> str:
            v = r.get(f"{name}_kB_per_atom")
            return "-" if v is None else f"{v:,.0f}"

        best = "AOTI" if r["nequip_best"] == "nequip_aoti" else "eager"
        lines.append(
            f"| {r['model']} | {r['dtype']} | {r['atoms']:,} | {rate('gnnff')} "
            f"| {rate('gnnff_aoti')} | {rate('nequip')} | {rate('nequip_aoti')} "
            f"| {r['ratio_default_vs_nequip_best']:.2f} (vs {best}) "
            f"| {', '.join(kb(c) for c in CONTENDERS)} |"
        )
    return "\n".join(lines)


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
        "--all-pairs",
        action="store_true",
        help="every model size x dtype x cell size (default: float64 and cells above "
        f"{MEDIUM_MAX_ATOMS} atoms for the small model only)",
    )
    ap.add_argument(
        "--no-aoti",
        action="store_true",
        help="skip both AOTInductor packages (compiling each takes about a minute per model)",
    )
    ap.add_argument("--cache", type=Path, help="folder for the model files, reused when there")
    ap.add_argument(
        "--memory", action="store_true", help="also peak memory per atom (fresh process each)"
    )
    ap.add_argument("--memory-only", action="store_true", help="only the memory part")
    ap.add_argument("--memory-calls", type=int, default=MEMORY_CALLS)
    ap.add_argument(
        "--memory-from",
        type=Path,
        help="join the memory rows of an earlier --memory-only --out FILE into the timing rows",
    )
    ap.add_argument("--out", type=Path, help="write {rows, memory, command} as JSON here")
    ap.add_argument("--compile-nequip", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--memory-child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.compile_nequip:
        import torch

        torch.set_num_threads(THREADS)
        size, dtype, path = args.compile_nequip
        seconds = compile_nequip_aoti(size, dtype, Path(path))
        print(f"nequip AOTI {size} {dtype}: compiled in {seconds:.0f} s")
        return 0
    if args.memory_child:
        name, size, dtype, n, workdir, calls = args.memory_child
        print(json.dumps(memory_child(name, size, dtype, int(n), Path(workdir), int(calls))))
        return 0
    here_only = (
        args.dtype or args.atoms or args.sizes or args.no_aoti or args.cache or args.memory
        or args.memory_only or args.out or args.all_pairs or args.memory_from
    )  # fmt: skip
    if here_only and not _nequip_importable():
        ap.error(f"these options need nequip in this interpreter; run it with {BENCH_PY}")
    if not here_only:
        rows = run(quick=args.quick)
        memory: list[dict] = []
    else:
        opts = {
            "dtypes": tuple(args.dtype) if args.dtype else None,
            "atoms": tuple(args.atoms) if args.atoms else None,
            "sizes": tuple(args.sizes) if args.sizes else None,
        }
        with tempfile.TemporaryDirectory() as tmp:
            cache = args.cache or Path(tmp)
            rows = []
            if not args.memory_only:
                rows = run_here(
                    quick=args.quick, aoti=not args.no_aoti, cache=cache,
                    all_pairs=args.all_pairs, **opts,
                )  # fmt: skip
            memory = []
            if args.memory or args.memory_only:
                sizes = opts["sizes"] or (("small",) if args.quick else tuple(SIZES))
                dtypes = opts["dtypes"] or (("float32",) if args.quick else ("float32", "float64"))
                n_list = opts["atoms"] or ((192,) if args.quick else N_ATOMS)
                cases = default_cases(sizes, dtypes, n_list, args.all_pairs)
                names = CONTENDERS if not args.no_aoti else ("gnnff", "nequip")
                memory = run_memory(cases, cache, names, args.memory_calls)
            if args.memory_from:
                memory = json.loads(args.memory_from.read_text())["memory"]
            join_memory(rows, memory)
    if args.out:
        record = {
            "command": " ".join(["benchmarks/bench_vs_nequip.py", *(argv or sys.argv[1:])]),
            "rows": rows,
            "memory": memory,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1) + "\n")
    if args.json:
        print(json.dumps(rows))
    elif rows and "nequip_best" in rows[0]:
        print(markdown_table(rows))
    else:
        sys.path.insert(0, str(HERE))
        from run_all import format_table

        print(format_table(rows or memory))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
