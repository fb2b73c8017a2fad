"""One force call taken apart, with a roofline figure: where the time of an MD step goes.

    python benchmarks/profile_step.py [--atoms 1536 12288] [--dtypes float32 float64]
        [--threads 1] [--repeats 5] [--parts ase lammps] [--out benchmarks/results/profile_step]

Model: the untrained allegro model of the benchmarks (default 'small' config, cutoff 5 A,
seed 0) on random SiO2 packings (``benchmarks/fixtures.py``), torch on ``--threads`` threads.

``ase`` part, per size and dtype, timed side by side (interleaved, warm-up, medians,
``benchmarks/timing.py``): the neighbour list (vesin, host), the model's forward (energy of the
eager model from the edge vectors) and backward (``autograd.grad`` of the energy w.r.t. the
edge vectors), the TorchScript model file's whole call (one pass; forward + backward + forces,
virials) and the ASE calculator's call (neighbour list + model, edge blocks of 20000, its CPU
default). FLOPs of forward + backward are COUNTED with ``torch.utils.flop_counter``
(FlopCounterMode: matrix products only, i.e. mm/addmm/bmm and einsums lowered to them;
elementwise work, gathers and scatters count zero), so GFLOP/s = counted FLOPs / (forward +
backward time) is the rate of useful dense arithmetic (also given over the whole TorchScript
call, and over the call of the same model compiled as an AOTInductor package, whose fused
elementwise kernels cut the largest cost that is not matrix arithmetic; ``--no-aoti`` skips
it). The peak is measured in the same run: a
dense square GEMM (torch.mm, n = 256..2048, same dtype and threads, best sample). The largest
costs by operator come from ``torch.profiler`` (self CPU time of one eager forward + backward).

``lammps`` part: pair_style gnnff on 1 MPI rank (one pass: ``max_block_edges 0``), seconds per
MD step of the whole loop, LAMMPS's Pair, Neigh and Comm timers, and the model call inside the
pair style (``compute pair gnnff`` element 3): pair - model is the plugin's own work.

Writes ``ase.json`` / ``lammps.json`` (a row as soon as it is measured) and ``profile_step.md``
(tables of all parts found) in ``--out``; ``--merge`` keeps the rows of other sizes and dtypes
already there (a run split in several).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from fixtures import CUTOFF, SPECIES, build_untrained, sio2_cell  # noqa: E402
from timing import timed_calls, timed_side_by_side  # noqa: E402

GEMM_SIZES = (256, 512, 1024, 2048)


def gemm_peak(dtype: str, repeats: int = 5) -> dict:
    """Best GFLOP/s of torch.mm on square n x n matrices (2 n^3 FLOPs) over :data:`GEMM_SIZES`
    and over the samples (each >= 0.2 s; the machine is shared, a peak is the best it gave)."""
    import torch

    best = {"gflops": 0.0, "n": 0}
    for n in GEMM_SIZES:
        a = torch.randn(n, n, dtype=getattr(torch, dtype))
        b = torch.randn(n, n, dtype=getattr(torch, dtype))
        res = timed_calls(lambda a=a, b=b: torch.mm(a, b), repeats, warmup=2, min_sample_s=0.2)
        g = 2.0 * n**3 / res["min_s"] / 1e9  # a peak: the best sample
        if g > best["gflops"]:
            best = {"gflops": round(g, 2), "n": n}
    return best


def _inputs(n_atoms: int, dtype: str):
    import torch

    from gnnff.potentials.neighbors import neighbor_list

    atoms = sio2_cell(n_atoms)
    edge_index, shift = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, CUTOFF)
    dt = getattr(torch, dtype)
    species = torch.as_tensor([SPECIES.index(s) for s in atoms.get_chemical_symbols()])
    pos = torch.as_tensor(atoms.positions, dtype=dt)
    ei = torch.as_tensor(edge_index)
    sh = torch.as_tensor(shift, dtype=dt)
    vec = (pos.index_select(0, ei[1]) - pos.index_select(0, ei[0]) + sh).detach()
    return atoms, pos, species, ei, sh, vec


def count_flops(model, vec, species, ei, n: int) -> dict:
    """Counted FLOPs (FlopCounterMode) of one forward and one backward."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    v = vec.clone().requires_grad_(True)
    with FlopCounterMode(display=False) as fwd:
        energy = model.energy_from_edges(v, species, ei, n, False)[0].sum()
    with FlopCounterMode(display=False) as bwd:
        torch.autograd.grad([energy], [v])
    return {"forward": int(fwd.get_total_flops()), "backward": int(bwd.get_total_flops())}


MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")


def top_ops(model, vec, species, ei, n: int, k: int = 8) -> dict:
    """The ``k`` operators with the largest self CPU time in one forward + backward, and the
    share of all self time spent in matrix products (:data:`MATMUL_OPS`), percent."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    v = vec.clone().requires_grad_(True)
    torch.autograd.grad([model.energy_from_edges(v, species, ei, n, False)[0].sum()], [v])
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        v = vec.clone().requires_grad_(True)
        torch.autograd.grad([model.energy_from_edges(v, species, ei, n, False)[0].sum()], [v])
    ev = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in ev)
    top = [
        {
            "op": e.key,
            "self_ms": round(e.self_cpu_time_total / 1e3, 1),
            "pct": round(100.0 * e.self_cpu_time_total / total, 1),
            "calls": e.count,
        }  # fmt: skip
        for e in ev[:k]
    ]
    mm = sum(e.self_cpu_time_total for e in ev if e.key in MATMUL_OPS)
    return {"top": top, "matmul_pct": round(100.0 * mm / total, 1)}


def _files(folder: Path, dtype: str, aoti: bool) -> tuple[Path, Path | None]:
    """The model as a TorchScript file and (``aoti``) an AOTInductor package, made once."""
    from gnnff.potentials import export_model

    pt, pt2 = folder / f"{dtype}.pt", folder / f"{dtype}.pt2"
    if not pt.exists():
        export_model(build_untrained("allegro"), pt, dtype)
    if aoti and not pt2.exists():
        t0 = time.perf_counter()
        export_model(build_untrained("allegro"), pt2, dtype, format="aoti")
        print(f"{dtype}: package compiled in {time.perf_counter() - t0:.0f} s", flush=True)
    return pt, pt2 if aoti else None


def profile_ase(n_atoms: int, dtype: str, repeats: int, folder: Path, aoti: bool) -> dict:
    """Times (s, medians), FLOPs and top operators of one force call (see the module doc)."""
    import numpy as np
    import torch

    from gnnff.calculators import GNNFFCalculator
    from gnnff.calculators.ase_calculator import keep_freed_memory
    from gnnff.potentials import load
    from gnnff.potentials.neighbors import neighbor_list

    keep_freed_memory()
    model = build_untrained("allegro").to(getattr(torch, dtype))
    pt, pt2 = _files(folder, dtype, aoti)
    atoms, pos, species, ei, sh, vec = _inputs(n_atoms, dtype)
    n = len(atoms)
    script, _ = load(pt)
    script.max_block_edges = 0
    calc = GNNFFCalculator(str(pt))
    rng = np.random.default_rng(0)
    base = atoms.positions.copy()
    state: dict = {}

    def forward():
        v = vec.clone().requires_grad_(True)
        state["v"], state["e"] = v, model.energy_from_edges(v, species, ei, n, False)[0].sum()

    def backward():
        torch.autograd.grad([state.pop("e")], [state.pop("v")])

    def calculator():
        atoms.set_positions(base + rng.uniform(-1e-3, 1e-3, base.shape))
        calc.calculate(atoms, ["energy", "forces"])

    fns = {
        "neighbour list": lambda: neighbor_list(base, atoms.cell.array, atoms.pbc, CUTOFF),
        "forward": forward,
        "backward": backward,
        "torchscript call": lambda: script(pos, species, ei, sh, n),
        "ase calculator call": calculator,
    }
    if pt2 is not None:
        package, _ = load(pt2)
        fns["aoti package call"] = lambda: package(pos, species, ei, sh, n)
    res = timed_side_by_side(fns, repeats=repeats, warmup=2)
    times = {k: round(v["median_s"], 5) for k, v in res.items() if k != "calls_per_sample"}
    flops = count_flops(model, vec, species, ei, n)
    fb = times["forward"] + times["backward"]
    return {
        "n_atoms": n,
        "n_edges": int(ei.shape[1]),
        "dtype": dtype,
        "times_s": times,
        "others_pct": max(v["others_pct"] for k, v in res.items() if k != "calls_per_sample"),
        "flops": flops,
        "gflops_fwd_bwd": round((flops["forward"] + flops["backward"]) / fb / 1e9, 3),
        "gflops_torchscript": round(
            (flops["forward"] + flops["backward"]) / times["torchscript call"] / 1e9, 3
        ),
        "gflops_aoti": round(
            (flops["forward"] + flops["backward"]) / times["aoti package call"] / 1e9, 3
        )
        if pt2 is not None
        else None,
        "top_ops": top_ops(model, vec, species, ei, n),
    }


def profile_lammps(n_atoms: int, dtype: str, folder: Path, repeats: int) -> dict:
    from lammps_step import lammps_step_times

    from gnnff.lammps.geometry import write_lammps_data
    from gnnff.potentials import export_model

    data = folder / f"sio2_{n_atoms}.data"
    if not data.exists():
        write_lammps_data(sio2_cell(n_atoms), data, SPECIES)
    pt = folder / f"{dtype}.pt"
    if not pt.exists():
        export_model(build_untrained("allegro"), pt, dtype)
    steps = 5 if n_atoms < 4000 else 2
    row = lammps_step_times(data, pt, SPECIES, 1, steps, repeats, blocks=[0])[0]
    return {"n_atoms": n_atoms, "dtype": dtype, "steps_per_run": steps, **row}


def markdown(out: Path) -> str:
    lines = ["# Per-step profile (`benchmarks/profile_step.py`)", ""]
    ase_file, lmp_file = out / "ase.json", out / "lammps.json"
    if ase_file.exists():
        a = json.loads(ase_file.read_text())
        lines += [f"ASE path; {a['machine']}; torch {a['torch']}, {a['threads']} thread(s). "
                  "FLOPs counted with torch.utils.flop_counter (matrix products only). Peak: "
                  "dense GEMM in the same run: " + ", ".join(
                      f"{d} {p['gflops']} GFLOP/s (n={p['n']})" for d, p in a["peak"].items()),
                  "",  # fmt: skip
                  "| atoms | edges | dtype | neighbour list ms | forward ms | backward ms | "
                  "TorchScript call ms | ASE call ms | AOTI call ms | GFLOP fwd+bwd | "
                  "% of peak: fwd+bwd / TorchScript call / AOTI call |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        nan = float("nan")
        for r in a["rows"]:
            t = {k: 1e3 * v for k, v in r["times_s"].items()}
            gf = (r["flops"]["forward"] + r["flops"]["backward"]) / 1e9
            lines.append(
                f"| {r['n_atoms']} | {r['n_edges']} | {r['dtype']} | {t['neighbour list']:.1f} | "
                f"{t['forward']:.1f} | {t['backward']:.1f} | {t['torchscript call']:.1f} | "
                f"{t['ase calculator call']:.1f} | {t.get('aoti package call', nan):.1f} "
                f"| {gf:.2f} | {r['pct_of_peak_fwd_bwd']:.1f} / "
                f"{r['pct_of_peak_torchscript']:.1f} / {r.get('pct_of_peak_aoti', nan):.1f} |"
            )
        lines += ["", "Largest operators (self CPU time, one eager forward + backward):", ""]
        for r in a["rows"]:
            ops = ", ".join(f"{o['op']} {o['pct']}%" for o in r["top_ops"]["top"][:6])
            lines.append(
                f"- {r['n_atoms']} atoms {r['dtype']}: matrix products "
                f"{r['top_ops']['matmul_pct']}% of the time; largest: {ops}"
            )
        lines.append("")
    if lmp_file.exists():
        m = json.loads(lmp_file.read_text())
        lines += ["LAMMPS, pair_style gnnff one pass, 1 MPI rank, ms per MD step (LAMMPS timers; "
                  "model = the model call inside the pair style):", "",
                  "| atoms | dtype | step | Pair | of which model | pair's own work | Neigh | "
                  "Comm |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in m["rows"]:
            f = {k: 1e3 * r[k] for k in ("step_s", "pair_s", "model_s", "pair_own_s",
                                         "neigh_s", "comm_s")}  # fmt: skip
            lines.append(
                f"| {r['natoms']} | {r['dtype']} | {f['step_s']:.1f} | {f['pair_s']:.1f} | "
                f"{f['model_s']:.1f} | {f['pair_own_s']:.1f} | {f['neigh_s']:.2f} | "
                f"{f['comm_s']:.2f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--atoms", type=int, nargs="+", default=[1536, 12288])
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--parts", nargs="+", default=["ase", "lammps"], choices=["ase", "lammps"])
    p.add_argument("--out", type=Path, default=HERE / "results" / "profile_step")
    p.add_argument(
        "--no-aoti",
        action="store_true",
        help="skip the AOTInductor package (compiling it takes about a minute per dtype)",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the rows of other sizes/dtypes already in --out (runs split over pauses)",
    )
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    head = {"torch": torch.__version__, "threads": args.threads,
            "machine": f"{platform.processor() or platform.machine()}, "
                       f"{_cpu_name()}"}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="profile-step-") as tmp:
        if "ase" in args.parts:
            table = _merged(args.out / "ase.json", head, args.merge)
            for dtype in args.dtypes:
                peak = gemm_peak(dtype)  # per dtype, next to its rows
                table.setdefault("peak", {})[dtype] = peak
                print(f"GEMM peak {dtype}: {peak}", flush=True)
                for n in args.atoms:
                    t0 = time.perf_counter()
                    r = profile_ase(n, dtype, args.repeats, Path(tmp), not args.no_aoti)
                    for k in ("fwd_bwd", "torchscript", "aoti"):
                        if r[f"gflops_{k}"] is not None:
                            r[f"pct_of_peak_{k}"] = round(
                                100.0 * r[f"gflops_{k}"] / peak["gflops"], 2
                            )
                    _put(table, r, args.out / "ase.json")
                    print(json.dumps({k: v for k, v in r.items() if k != "top_ops"}),
                          f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
        if "lammps" in args.parts:
            table = _merged(args.out / "lammps.json", head, args.merge)
            for dtype in args.dtypes:
                for n in args.atoms:
                    r = profile_lammps(n, dtype, Path(tmp), max(3, args.repeats - 2))
                    _put(table, r, args.out / "lammps.json")
                    print(json.dumps(r), flush=True)
    (args.out / "profile_step.md").write_text(markdown(args.out))
    print(markdown(args.out))
    return 0


def _merged(path: Path, head: dict, merge: bool) -> dict:
    """The table to add rows to: ``path``'s when ``merge`` and it was made with the same torch
    and threads, else a new one."""
    if merge and path.exists():
        old = json.loads(path.read_text())
        if all(old.get(k) == v for k, v in head.items()):
            return old
    return {**head, "rows": []}


def _put(table: dict, row: dict, path: Path) -> None:
    """Add ``row`` (replacing the one of the same size and dtype) and write the table."""
    key = (row["n_atoms"], row["dtype"])
    table["rows"] = [r for r in table["rows"] if (r["n_atoms"], r["dtype"]) != key] + [row]
    table["rows"].sort(key=lambda r: (r["dtype"], r["n_atoms"]))
    path.write_text(json.dumps(table, indent=1) + "\n")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
