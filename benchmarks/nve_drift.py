"""NVE energy conservation of a gnnff model in ASE and in LAMMPS (1 and 2 MPI ranks), and of an
attention model with each softmax backend.

Drift = slope of a least-squares line through E_tot(t) / N (eV/atom/ps); also the largest
|E_tot(t) - E_tot(0)| / N. Energies come from the stability reports both engines write.

    python benchmarks/nve_drift.py --model M.pt [--structure S.extxyz] [--time-ps 5]
        [--temperature 600] [--engines ase,ase32,lammps1,lammps2] [--backends]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_STRUCTURE = REPO / "data" / "sio2" / "reference_md" / "a-SiO2_1000K.extxyz"


def drift(report: dict) -> dict:
    s = report["series"]
    t = np.asarray(s["time_ps"], dtype=float)
    e = np.asarray(s["etot"], dtype=float) / report["n_atoms"]
    ok = np.isfinite(e)
    t, e = t[ok], e[ok]
    slope = float(np.polyfit(t, e, 1)[0]) if len(t) > 2 else float("nan")
    return {
        "drift_eV_atom_ps": slope,
        "max_dev_eV_atom": float(np.max(np.abs(e - e[0]))),
        "t_ps": float(t[-1]) if len(t) else 0.0,
        "S": report["stability_index"],
        "failed": report.get("failed_criterion"),
    }


def run_ase(
    model: Path,
    atoms,
    time_ps: float,
    temperature: float,
    out: Path,
    dtype: str = "float64",
    dt_fs: float = 1.0,
) -> dict:
    from gnnff.calculators import GNNFFCalculator
    from gnnff.calculators.md import MDSettings, run_md
    from gnnff.stability import StabilityConfig

    cfg = StabilityConfig(interval=10, criteria=["finite", "energy_conservation"])
    s = MDSettings(
        ensemble="nve",
        temperature=temperature,
        time_ps=time_ps,
        dt_fs=dt_fs,
        check_interval=10,
        traj_interval=1000,
    )
    return run_md(
        atoms, GNNFFCalculator(model, dtype=dtype), s, out, stability_config=cfg, progress=False
    )


def run_lammps(
    model: Path, atoms, time_ps: float, temperature: float, out: Path, np_: int, dt_fs: float = 1.0
) -> dict:
    from gnnff.lammps.driver import run_lammps_input
    from gnnff.lammps.geometry import write_lammps_data
    from gnnff.potentials import read_metadata

    out.mkdir(parents=True, exist_ok=True)
    species = read_metadata(model)["species"]
    write_lammps_data(atoms, out / "start.data", species)
    crit = out / "criteria.yaml"
    crit.write_text("interval: 10\ncriteria: [finite, energy_conservation]\n")
    run_lammps_input(
        REPO / "gnnff" / "plugin" / "templates" / "in.nve",
        out,
        np_=np_,
        stability=crit,
        ensemble="nve",
        variables={
            "model": str(model),
            "data": str(out / "start.data"),
            "types": " ".join(species),
            "temp": temperature,
            "steps": int(round(time_ps * 1000 / dt_fs)),
            "dt": dt_fs / 1000.0,
        },
    )
    return json.loads((out / "report.json").read_text())


def run(
    quick: bool = False,
    model: str | None = None,
    structure: str | None = None,
    time_ps: float | None = None,
    temperature: float = 600.0,
    engines: tuple[str, ...] = ("ase", "ase32", "lammps1", "lammps2"),
    backends: bool = False,
) -> list[dict]:
    import ase.io

    sys.path.insert(0, str(REPO))
    if model is None:
        from gnnff.calculators.pretrained import available_pretrained, pretrained_path

        if "sio2-allegro-decorrelated" not in available_pretrained():
            return [
                {"error": "give --model (no bundled sio2-allegro-decorrelated in this install)"}
            ]
        model = str(pretrained_path("sio2-allegro-decorrelated"))
    time_ps = time_ps or (0.2 if quick else 5.0)
    atoms = ase.io.read(structure or DEFAULT_STRUCTURE, index=-1)
    atoms.calc = None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for eng in engines:
            if eng.startswith("ase"):
                rep = run_ase(
                    Path(model),
                    atoms,
                    time_ps,
                    temperature,
                    tmp / eng,
                    dtype="float32" if eng == "ase32" else "float64",
                )
            else:
                rep = run_lammps(
                    Path(model),
                    atoms,
                    time_ps,
                    temperature,
                    tmp / eng,
                    int(eng.removeprefix("lammps")),
                )
            rows.append({"engine": eng, "atoms": len(atoms), **drift(rep)})
        if backends:
            from gnnff.potentials import eager_from_file, export_model
            from gnnff.potentials.analysis.softmax_eval import BACKENDS

            eager = eager_from_file(model)
            for name, bits in BACKENDS:
                path = export_model(
                    eager, tmp / f"{name}{bits}.pt", softmax={"backend": name, "bits": bits}
                )
                rep = run_ase(path, atoms, time_ps, temperature, tmp / f"b_{name}{bits}")
                rows.append({"engine": f"ase/{name}/{bits}", "atoms": len(atoms), **drift(rep)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model")
    ap.add_argument("--structure")
    ap.add_argument("--time-ps", type=float)
    ap.add_argument("--temperature", type=float, default=600.0)
    ap.add_argument("--engines", default="ase,ase32,lammps1,lammps2")
    ap.add_argument("--backends", action="store_true", help="attention model: every softmax")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    sys.path.insert(0, str(REPO / "benchmarks"))
    from run_all import format_table

    engines = tuple(e for e in a.engines.split(",") if e)
    print(
        format_table(
            run(a.quick, a.model, a.structure, a.time_ps, a.temperature, engines, a.backends)
        )
    )


if __name__ == "__main__":
    main()
