"""Stability of an attention model's MD with each softmax backend (float, LUT 8/16 bit).

The model is re-exported once per backend (same weights) and run with the study's settings:
NVT (Langevin, 1 fs, float32) from reference-MD starting structures, judged by the study's
stability criteria. Prints mean Stability Index, median stable time and which criterion ended
each run, per backend. Not part of ``make bench`` (tens of minutes).

    python benchmarks/lut_stability.py [--model sio2-attn-decorrelated] [--data data/sio2]
        [--systems SiO2 SiO1.55] [--starts 2] [--time-ps 10] [--temperature 1000] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(
    model: str = "sio2-attn-decorrelated",
    data: str | None = None,
    systems: tuple[str, ...] = ("SiO2", "SiO1.55"),
    starts: int = 2,
    time_ps: float = 10.0,
    temperature: float = 1000.0,
    jobs: int = 2,
    out: str | None = None,
) -> list[dict]:
    sys.path.insert(0, str(REPO))
    from gnnff.potentials import eager_from_file, export_model
    from gnnff.potentials.analysis.softmax_eval import BACKENDS
    from gnnff.potentials.bundled import model_file
    from gnnff.study.bundle import stability_check

    path = model_file(model)
    eager = eager_from_file(path)
    if eager.family != "allegro-attn":
        raise SystemExit(
            f"{model} is a {eager.family!r} model: softmax backends apply to "
            "allegro-attn models only (e.g. --model sio2-attn-decorrelated)"
        )
    data_dir = Path(data) if data else REPO / "data" / "sio2"
    if not (data_dir / "reference_md").is_dir():
        raise SystemExit(
            f"{data_dir}/reference_md not found: generate the data first "
            f"(gnnff data generate --preset sio2-tersoff --out {data_dir})"
        )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(out) if out else Path(tmp)
        for name, bits in BACKENDS:
            label = name if bits is None else f"{name}-{bits}"
            m = export_model(
                eager,
                work / f"{label}.pt",
                dtype="float64",
                softmax={"backend": name, "bits": bits},
            )
            res = stability_check(
                m,
                data_dir,
                work / label,
                systems=systems,
                temperature=temperature,
                n_starts=starts,
                time_ps=time_ps,
                jobs=jobs,
            )
            per_system = {
                s: [r["stability_index"] for r in res["runs"] if r["system"] == s] for s in systems
            }
            rows.append({
                "softmax": label, "runs": len(res["runs"]),
                "mean_S": res["mean_stability_index"], "median_stable_ps": res["median_stable_ps"],
                "S=1": f"{sum(r['stability_index'] >= 1 for r in res['runs'])}/{len(res['runs'])}",
                **{f"S_{s}": sum(v) / len(v) for s, v in per_system.items() if v},
                "ended_by": json.dumps(res["ended_by"]),
            })  # fmt: skip
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="sio2-attn-decorrelated", help="file or bundled name")
    ap.add_argument("--data", help="data folder with reference_md/ (default data/sio2)")
    ap.add_argument("--systems", nargs="+", default=["SiO2", "SiO1.55"])
    ap.add_argument("--starts", type=int, default=2)
    ap.add_argument("--time-ps", type=float, default=10.0)
    ap.add_argument("--temperature", type=float, default=1000.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", help="keep the runs (reports, plots) in this folder")
    a = ap.parse_args()
    sys.path.insert(0, str(REPO / "benchmarks"))
    from run_all import format_table

    print(
        format_table(
            run(
                a.model, a.data, tuple(a.systems), a.starts, a.time_ps, a.temperature, a.jobs, a.out
            )
        )
    )


if __name__ == "__main__":
    main()
