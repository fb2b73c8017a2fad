"""Student against teacher, side by side in one run on one machine (issue 25): accuracy on
held-out teacher-labelled frames, MD speed through ASE (and the student in LAMMPS), and the
held-out stability of the student.

    python benchmarks/bench_teacher_student.py --speed [--student hfo2-allegro-sevennet]
    python benchmarks/bench_teacher_student.py --accuracy [--student MODEL]
    python benchmarks/bench_teacher_student.py --stability runs/hfo2_heldout
    python benchmarks/bench_teacher_student.py --material sio2 --accuracy --speed ...

``--material`` (``hfo2``, the default, or ``sio2``) picks the cells, the test splits, the
held-out glasses and the default student. Speed: time per velocity-Verlet MD step (one force
call, neighbour list included) of the student (``GNNFFCalculator``) and the teacher
(SevenNet-0 through ``sevenn``'s ASE calculator), interleaved (half the rounds in reverse
order, ``timing.timed_balanced``), on crystal cells of 96 and 768
atoms (monoclinic HfO2, 12 atoms x 2^3 / 4^3; beta-cristobalite SiO2, 24 atoms x 2x2x1 /
4x4x2), both with the same
number of torch threads (``--threads``, default 2: the whole machine); the student alone at
6144 atoms, and in LAMMPS (``pair_style gnnff``, one torch thread per rank) on 1 and 2 MPI
ranks at 768 and 6144 atoms. Figures: s/step (median of the quiet samples, see
``timing.py``), atoms/s = atoms / (s/step), and ``x_teacher`` = student atoms/s over the
teacher's at the same size and threads.

Accuracy: energy (meV/atom), force (meV/A) and stress (GPa) MAE of the student against the
teacher's labels of the test splits of ``examples/data/hfo2-sevennet`` (ID, hot, HfO_1.55,
HfO_1.10; for SiO2 ``examples/data/sio2-sevennet-test``: ID, SiO_1.55, SiO_1.10) and of the
held-out glasses (``examples/data/<material>-heldout*``) when present; each
force MAE also as a fraction of the mean absolute force component of the labels.

Stability: the runs of a ``gnnff stabilize`` folder with ``max_rounds: 0`` (one exploration of
the given model on held-out starts, e.g. ``examples/stabilize/hfo2_heldout.yaml``): the
fraction of runs at S = 1 with its exact (Clopper-Pearson) 95 % interval
(``scipy.stats.binomtest``), and each run's stable time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(REPO))

from timing import (  # noqa: E402
    busy_columns,
    machine_busy_s,
    others_pct,
    own_cpu_s,
    summarize,
    timed_balanced,
)

DATA_ROOT = REPO / "examples" / "data"
TIMESTEP_FS = 1.0

# Per material: the preset whose crystal gives the speed cells, that crystal, the repeats of
# the 96 / 768 / 6144-atom cells, the teacher-labelled test splits and the LAMMPS type order.
MATERIALS = {
    "hfo2": {
        "student": "hfo2-allegro-sevennet",
        "preset": "hfo2-sevennet",
        "crystal": "m-HfO2",
        "repeats": ((2, 2, 2), (4, 4, 4), (8, 8, 8)),
        "data": "hfo2-sevennet",
        "splits": ("test_id", "ood_hot", "ood_HfO1.55", "ood_HfO1.10"),
        "species": ("Hf", "O"),
    },
    "sio2": {
        "student": "sio2-allegro-sevennet",
        "preset": "sio2-sevennet",
        "crystal": "beta-cristobalite",
        "repeats": ((2, 2, 1), (4, 4, 2), (8, 8, 4)),
        "data": "sio2-sevennet-test",  # the committed test splits of sio2-sevennet
        "splits": ("test_id", "ood_SiO1.55", "ood_SiO1.10"),
        "species": ("Si", "O"),
    },
}
DEFAULT_STUDENT = MATERIALS["hfo2"]["student"]


def crystal_cell(material: str, size: int):
    """The material's crystal (the cell of its preset) repeated to 96 (size 0), 768 (1) or
    6144 atoms (2), with Maxwell-Boltzmann momenta at 300 K (seed 0)."""
    from ase import units
    from ase.spacegroup import crystal

    from gnnff.data.presets import load_preset

    spec = MATERIALS[material]
    systems = load_preset(spec["preset"])["systems"]
    c = next(s for s in systems if s["name"] == spec["crystal"])["crystal"]
    atoms = crystal(
        c["symbols"], c["basis"], spacegroup=c["spacegroup"], cellpar=c["cellpar"]
    ).repeat(spec["repeats"][size])
    rng = np.random.default_rng(0)
    sigma = np.sqrt(atoms.get_masses()[:, None] * units.kB * 300.0)
    atoms.set_momenta(rng.normal(size=(len(atoms), 3)) * sigma)
    return atoms


def _md_step(atoms, calc):
    from ase import units
    from ase.md.verlet import VelocityVerlet

    atoms = atoms.copy()
    atoms.calc = calc
    dyn = VelocityVerlet(atoms, timestep=TIMESTEP_FS * units.fs)
    return lambda: dyn.run(1)


def _lammps_worker(spec: dict) -> None:
    """One MPI rank: NVE MD of the data file with pair_style gnnff; rank 0 prints JSON."""
    from mpi4py import MPI

    from gnnff.lammps.library import new_lammps

    comm = MPI.COMM_WORLD
    lmp = new_lammps(comm=comm)
    lmp.command(f"plugin load {spec['plugin']}")
    for line in ["units metal", "atom_style atomic", "boundary p p p", "newton on",
                 f"read_data {spec['data']}", "pair_style gnnff",
                 f"pair_coeff * * {spec['model']} {' '.join(spec['species'])}",
                 "velocity all create 300 12345 loop geom", "timestep 0.001",
                 "fix nve all nve", "thermo 0", "run 3"]:  # fmt: skip
        lmp.command(line)
    samples = []
    for _ in range(spec["repeats"]):
        own0, mach0 = own_cpu_s(), machine_busy_s()
        comm.Barrier()
        t0 = time.perf_counter()
        lmp.command(f"run {spec['steps']} pre no post no")
        comm.Barrier()
        dt = (time.perf_counter() - t0) / spec["steps"]
        own = comm.allreduce(own_cpu_s() - own0)
        samples.append((dt, others_pct(machine_busy_s() - mach0, own, dt * spec["steps"])))
    natoms = int(lmp.get_natoms())
    lmp.close()
    if comm.Get_rank() == 0:
        print("BENCH " + json.dumps({"natoms": natoms, "samples": samples}), flush=True)


def _lammps(model: str, atoms, species, nprocs: int, steps: int, repeats: int, plugin: str) -> dict:
    import ase.io

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "cell.data"
        ase.io.write(data, atoms, format="lammps-data", specorder=list(species), masses=True)
        spec = {"data": str(data), "model": model, "plugin": plugin, "steps": steps,
                "repeats": repeats, "species": list(species)}  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        mpirun = Path(sys.executable).parent / "mpirun"
        cmd = [str(mpirun), "-np", str(nprocs), sys.executable, __file__, "--lammps-worker",
               json.dumps(spec)]  # fmt: skip
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"LAMMPS worker failed:\n{out.stderr[-3000:]}")
    res = json.loads(line[6:])
    return {"natoms": res["natoms"], **summarize([tuple(s) for s in res["samples"]])}


def _row(code: str, natoms: int, par: str, res: dict) -> dict:
    return {
        "code": code,
        "atoms": natoms,
        "parallel": par,
        "s_per_step": res["median_s"],
        "atoms_per_s": natoms / res["median_s"],
        **busy_columns(res),
    }


STUDENT_MODES = (
    ("TorchScript", "float64"),
    ("TorchScript", "float32"),
    ("AOTI", "float64"),
    ("AOTI", "float32"),
)
"""The student's modes timed beside the teacher: the bundled TorchScript file as shipped
(float64), the same file cast to float32 (the dtype it was trained in, and the teacher's), and
AOTInductor packages of it in both dtypes (``gnnff export NAME --format aoti``, compiled for
this machine and torch release into the ``--cache`` folder on first use, about a minute each)."""


def student_file(model: str, fmt: str, dtype: str, cache: Path) -> str:
    """The model file that runs ``model`` in mode (``fmt``, ``dtype``): the file itself for
    TorchScript (the calculator casts it), else an AOTInductor package in ``cache``, compiled
    when missing (its name holds the model's sha256, the gnnff and torch releases, the
    device)."""
    import hashlib

    from gnnff.potentials import eager_from_file, export_model
    from gnnff.potentials.files.aoti import torch_release

    if fmt == "TorchScript":
        return model
    import gnnff

    digest = hashlib.sha256(Path(model).read_bytes()).hexdigest()[:12]
    tag = f"{digest}_gnnff{gnnff.__version__}_torch{torch_release()}_cpu_{dtype}"
    package = cache / f"{Path(model).stem}_{tag}.pt2"
    if not package.exists():
        cache.mkdir(parents=True, exist_ok=True)
        print(f"compiling {package.name} (about a minute) ...", flush=True)
        export_model(eager_from_file(model), package, dtype=dtype, format="aoti")
    return str(package)


def _mode_label(fmt: str, dtype: str) -> str:
    return f"ASE student {fmt} {dtype}"


def _max_force_difference(atoms, calcs: dict, reference: str) -> dict[str, float]:
    """max |F - F_reference| (eV/A) of every calculator on ``atoms`` (rattled by 0.05 A)."""
    a = atoms.copy()
    a.rattle(0.05, seed=1)
    forces = {}
    for key, calc in calcs.items():
        a.calc = calc
        forces[key] = a.get_forces().copy()
    return {k: float(np.abs(f - forces[reference]).max()) for k, f in forces.items()}


def speed(
    student: str,
    threads: int = 2,
    quick: bool = False,
    material: str = "hfo2",
    modes: tuple[tuple[str, str], ...] = STUDENT_MODES,
    cache: Path | None = None,
) -> list[dict]:
    """Rows of s/step and atoms/s: the student in every mode of ``modes`` and the teacher
    through ASE (interleaved, one run), the student modes alone at 6144 atoms, and the
    TorchScript file and the fastest package in LAMMPS on 1 and 2 ranks. Student rows carry
    ``max_dF_eV_A``: the largest force difference of that mode from the first mode on a
    rattled 96-atom cell (the same model in another precision or format)."""
    import torch

    from gnnff.calculators import GNNFFCalculator
    from gnnff.data.teacher import build_teacher
    from gnnff.lammps.build import build_plugin
    from gnnff.potentials.bundled import model_file

    model = str(model_file(student))
    cache = cache or REPO / "bench_out" / "student_packages"
    files = {m: student_file(model, m[0], m[1], cache) for m in modes}
    torch.set_num_threads(threads)

    def calculator(mode: tuple[str, str]):
        fmt, dtype = mode
        return GNNFFCalculator(files[mode], dtype=dtype if fmt == "TorchScript" else None)

    calcs = {m: calculator(m) for m in modes}  # loaded once, shared by every cell
    teacher = build_teacher("sevennet-0")
    small = crystal_cell(material, 0)
    dF = _max_force_difference(small, calcs, modes[0])
    rows = []
    sizes = (0,) if quick else (0, 1)
    for size in sizes:
        atoms = crystal_cell(material, size)
        reps = 3 if size == 1 else 5
        steps = {_mode_label(*m): _md_step(atoms, calcs[m]) for m in modes}
        steps["teacher"] = _md_step(atoms, teacher)
        res = timed_balanced(steps, repeats=reps + 1, warmup=2)
        teacher_row = _row("ASE teacher SevenNet-0", len(atoms), f"{threads} threads",
                           res["teacher"])  # fmt: skip
        for m in modes:
            row = _row(_mode_label(*m), len(atoms), f"{threads} threads", res[_mode_label(*m)])
            row["x_teacher"] = round(row["atoms_per_s"] / teacher_row["atoms_per_s"], 1)
            row["max_dF_eV_A"] = dF[m]
            rows.append(row)
        rows.append(teacher_row)
    if quick:
        return rows
    big = crystal_cell(material, 2)
    res = timed_balanced(
        {_mode_label(*m): _md_step(big, calcs[m]) for m in modes}, repeats=4, warmup=1
    )
    for m in modes:
        rows.append(_row(_mode_label(*m), len(big), f"{threads} threads", res[_mode_label(*m)]))
    plugin = str(build_plugin(quiet=True))
    species = MATERIALS[material]["species"]
    big_rows = [r for r in rows if r["atoms"] == len(big)]
    fastest = max(big_rows, key=lambda r: r["atoms_per_s"])["code"]
    lammps_files = {"TorchScript file": model}
    lammps_files.update(
        {f"{m[0]} {m[1]}": files[m] for m in modes if _mode_label(*m) == fastest and m[0] == "AOTI"}
    )
    for label, path in lammps_files.items():
        for size, steps_n in ((1, 10), (2, 2)):
            for nprocs in (1, 2):
                res = _lammps(path, crystal_cell(material, size), species, nprocs, steps_n, 3,
                              plugin)  # fmt: skip
                rows.append(_row(f"LAMMPS student {label}", res["natoms"], f"{nprocs} ranks", res))
    return rows


def accuracy(student: str, material: str = "hfo2", data: str | Path | None = None) -> list[dict]:
    """Rows of student-vs-teacher MAE per held-out split (labels: the teacher's)."""
    import ase.io

    from gnnff.potentials.bundled import model_file
    from gnnff.training.evaluation import evaluate_model_file

    model = str(model_file(student))
    spec = MATERIALS[material]
    data_dir = Path(data) if data else DATA_ROOT / spec["data"]
    files = [(s, data_dir / f"{s}.extxyz") for s in spec["splits"]]
    missing = [str(f) for _, f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(
            f"test splits missing: {missing}; make them with `gnnff data generate --preset "
            f"{spec['preset']} --out {data_dir}` or pass --data DIR"
        )
    for glass in sorted(DATA_ROOT.glob(f"{material}-heldout*/*/reference_md/*")):
        files.append((f"heldout {glass.parent.parent.name} {glass.stem}", glass))
    rows = []
    for name, path in files:
        frames = ase.io.read(path, ":")
        mean_f = float(np.mean([np.abs(a.get_forces()).mean() for a in frames]))
        res = evaluate_model_file(model, path)
        rows.append(
            {
                "split": name,
                "frames": res["num_structures"],
                "energy_mae_meV_atom": res.get("energy_mae"),
                "force_mae_meV_A": res.get("force_mae"),
                "stress_mae_GPa": res.get("stress_mae"),
                "mean_abs_F_eV_A": mean_f,
                "force_mae_fraction": res.get("force_mae", float("nan")) / (1000 * mean_f),
            }
        )
    return rows


def stability(loop_dir: str | Path) -> dict:
    """The held-out runs of a ``max_rounds: 0`` stabilize folder: S per run, the fraction at
    S = 1 and its exact 95 % interval."""
    from scipy.stats import binomtest

    files = sorted(Path(loop_dir).glob("round_*/explore/run_*/done.json"))
    if not files:
        raise FileNotFoundError(f"no round_*/explore/run_*/done.json under {loop_dir}")
    runs = [json.loads(f.read_text()) for f in files]
    ok = sum(1 for r in runs if r["stability_index"] >= 1.0)
    ci = binomtest(ok, len(runs)).proportion_ci(confidence_level=0.95, method="exact")
    return {
        "runs": len(runs),
        "at_S_1": ok,
        "fraction": ok / len(runs),
        "mean_stability_index": sum(r["stability_index"] for r in runs) / len(runs),
        "median_stable_ps": sorted(r["stable_time_ps"] for r in runs)[len(runs) // 2],
        "ci95_exact": [ci.low, ci.high],
        "per_run": runs,
    }


def markdown(out: dict) -> str:
    """The results as markdown tables (docs/results)."""
    lines: list[str] = []
    if "accuracy" in out:
        lines += [
            "| split | frames | energy MAE (meV/atom) | force MAE (meV/A) | "
            "fraction of mean abs F | stress MAE (GPa) |",
            "|---|---|---|---|---|---|",
        ]
        for r in out["accuracy"]:
            stress = r.get("stress_mae_GPa")
            lines.append(
                f"| {r['split']} | {r['frames']} | {r['energy_mae_meV_atom']:.1f} | "
                f"{r['force_mae_meV_A']:.0f} | {100 * r['force_mae_fraction']:.1f} % | "
                f"{'-' if stress is None else f'{stress:.2f}'} |"
            )
        lines.append("")
    if "speed" in out:
        lines += ["| code | atoms | parallel | s/step | atoms/s | student / teacher | "
                  "max dF vs first mode (eV/A) |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in out["speed"]:
            df = r.get("max_dF_eV_A")
            lines.append(
                f"| {r['code']} | {r['atoms']} | {r['parallel']} | {r['s_per_step']:.4g} | "
                f"{r['atoms_per_s']:.4g} | {r.get('x_teacher', '')} | "
                f"{'' if df is None else f'{df:.1e}'} |"
            )
        lines.append("")
    if "stability" in out:
        st = out["stability"]
        lo, hi = st["ci95_exact"]
        lines += [
            f"Held-out runs at S = 1: {st['at_S_1']} / {st['runs']} "
            f"(exact 95 % interval {lo:.2f}-{hi:.2f})",
            "",
            "| start | T (K) | S | stable time (ps) | ended by |",
            "|---|---|---|---|---|",
        ]
        for r in st["per_run"]:
            lines.append(
                f"| {r['structure']} | {r['temperature']:g} | {r['stability_index']:.3f} | "
                f"{r['stable_time_ps']:.2f} | {r.get('failed_criterion') or '-'} |"
            )
    return "\n".join(lines) + "\n"


def run(quick: bool = False) -> list[dict]:
    """``make bench``: the speed rows (needs gnnff[teacher] and the bundled HfO_x student)."""
    return speed(DEFAULT_STUDENT, quick=quick)


def main() -> None:
    from run_all import format_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--material", choices=sorted(MATERIALS), default="hfo2")
    ap.add_argument("--student", help="model file or bundled name (default: the material's)")
    ap.add_argument(
        "--data", help="folder of the test splits (default: the material's in examples/data)"
    )
    ap.add_argument("--speed", action="store_true")
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--stability", metavar="LOOP_DIR")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument(
        "--modes",
        nargs="+",
        metavar="FORMAT:DTYPE",
        help="student modes to time (default: "
        + " ".join(f"{f}:{d}" for f, d in STUDENT_MODES)
        + "); the first is the reference of max_dF",
    )
    ap.add_argument(
        "--cache",
        type=Path,
        help="folder of the compiled student packages (default: bench_out/student_packages)",
    )
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--markdown", help="write the results as markdown tables here")
    ap.add_argument("--from-json", help="read results of earlier runs (--out) instead")
    ap.add_argument("--lammps-worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.lammps_worker:
        _lammps_worker(json.loads(args.lammps_worker))
        return
    out: dict = json.loads(Path(args.from_json).read_text()) if args.from_json else {}
    student = args.student or MATERIALS[args.material]["student"]
    if args.accuracy:
        out["accuracy"] = accuracy(student, args.material, args.data)
        print(format_table(out["accuracy"]), flush=True)
    if args.speed:
        modes = STUDENT_MODES
        if args.modes:
            modes = tuple(tuple(m.split(":", 1)) for m in args.modes)  # type: ignore[misc]
            bad = [m for m in modes if m not in STUDENT_MODES]
            if bad:
                ap.error(f"--modes: unknown {bad}; choose from "
                         f"{' '.join(f'{f}:{d}' for f, d in STUDENT_MODES)}")  # fmt: skip
        out["speed"] = speed(student, args.threads, args.quick, args.material, modes, args.cache)
        print(format_table(out["speed"]), flush=True)
    if args.stability:
        out["stability"] = stability(args.stability)
        print(json.dumps(out["stability"], indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2))
    if args.markdown:
        Path(args.markdown).write_text(markdown(out))


if __name__ == "__main__":
    main()
