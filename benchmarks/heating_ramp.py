"""MLIP Arena's heating test for the bundled models, side by side (issue 25, point 6).

    python benchmarks/heating_ramp.py [--models hfo2-allegro-sevennet sio2-allegro-al ...]
                                      [--seeds 0 1 2] [--time-ps 10] [--out DIR]

Each run is ``gnnff md MODEL --heating-ramp``: NVT (Langevin), the thermostat's target going
linearly from 300 to 3000 K over 10 ps, judged by the stability monitor against the live
target (finite values, temperature <= 3x the target at each check, close contacts against the
model's training data; the RDF does not apply under a ramp: the run's first window is no
reference for a structure heated on purpose); the score is S, the fraction of the ramp run
before the first failed check. Starts:
the model's own crystal, its ground-state polymorph from the bundled presets (monoclinic
HfO2, 96 atoms, for HfO_x models; alpha-quartz, 72 atoms, for SiO2 models). Every seed gives
other initial velocities and thermostat noise; the table gives each model's S per seed, the
mean S and the median stable time. Results: ``<out>/heating_ramp.json`` and ``.md``; each run's
folder keeps its report.json and report.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_MODELS = ("hfo2-allegro-sevennet", "sio2-allegro-sevennet", "sio2-allegro-baseline",
                  "sio2-allegro-al")  # fmt: skip


def start_structure(species: list[str], folder: Path) -> Path:
    """The ground-state crystal of the model's material (from the bundled presets) written to
    ``folder``; ValueError for a species set without one."""
    import ase.io
    from ase.spacegroup import crystal

    from gnnff.data.presets import load_preset

    key = tuple(sorted(species))
    if key == ("Hf", "O"):
        preset, name, repeat = "hfo2-sevennet", "m-HfO2", (2, 2, 2)
    elif key == ("O", "Si"):
        preset, name, repeat = "sio2-tersoff", "alpha-quartz", (2, 2, 2)
    else:
        raise ValueError(f"no start crystal for species {species}")
    system = next(s for s in load_preset(preset)["systems"] if s["name"] == name)
    c = system["crystal"]
    atoms = crystal(c["symbols"], c["basis"], spacegroup=c["spacegroup"], cellpar=c["cellpar"])
    path = folder / f"{name}.extxyz"
    ase.io.write(path, atoms.repeat(repeat))
    return path


def run(models: list[str], seeds: list[int], time_ps: float, out: Path) -> list[dict]:
    from gnnff.potentials import read_metadata
    from gnnff.potentials.bundled import model_file

    out = out.resolve()  # the runs start in their own folder (cwd=out): paths must not be relative
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for model in models:
        species = list(read_metadata(model_file(model))["species"])
        structure = start_structure(species, out)
        for seed in seeds:
            label = Path(model).stem if Path(model).suffix else model  # a file: its name
            rund = out / f"{label}_seed{seed}"
            report = rund / "report.json"
            t0 = time.perf_counter()
            if not report.is_file():  # resumable: a finished run is kept
                cmd = [sys.executable, "-m", "gnnff.cli", "md", "--model", model,
                       "--structure", str(structure), "--heating-ramp", "--time-ps",
                       str(time_ps), "--seed", str(seed), "--out", str(rund),
                       "--overwrite"]  # fmt: skip
                subprocess.run(cmd, check=False, cwd=out)
            res = json.loads(report.read_text())
            run_info = rund / "run.json"  # the run's own wall time (also for a kept run)
            wall = json.loads(run_info.read_text()).get("wall_s") if run_info.is_file() else None
            rows.append(
                {
                    "model": label,
                    "atoms": structure.stem,
                    "seed": seed,
                    "S": res["stability_index"],
                    "stable_ps": res["stable_time_ps"],
                    "failed_criterion": res.get("failed_criterion"),
                    "wall_s": round(time.perf_counter() - t0 if wall is None else wall, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        out.append(
            {
                "model": model,
                "seeds": len(mine),
                "S_per_seed": [round(r["S"], 3) for r in mine],
                "mean_S": statistics.mean(r["S"] for r in mine),
                "median_stable_ps": statistics.median(r["stable_ps"] for r in mine),
                "failed": [r["failed_criterion"] for r in mine if r["S"] < 1],
            }
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(DEFAULT_MODELS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--time-ps", type=float, default=10.0)
    ap.add_argument("--out", default="bench_out/heating_ramp")
    args = ap.parse_args()
    out = Path(args.out)
    rows = run(args.models, args.seeds, args.time_ps, out)
    table = summary(rows)
    (out / "heating_ramp.json").write_text(json.dumps({"runs": rows, "summary": table}, indent=2))
    lines = ["| model | seeds | S per seed | mean S | median stable time (ps) | failed by |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for t in table:
        lines.append(
            f"| {t['model']} | {t['seeds']} | {t['S_per_seed']} | {t['mean_S']:.3f} | "
            f"{t['median_stable_ps']:.2f} | {', '.join(map(str, t['failed'])) or '-'} |"
        )
    (out / "heating_ramp.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
