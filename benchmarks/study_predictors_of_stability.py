"""Which property of a trained model predicts its stability? Spearman rho over a study's models.

    python benchmarks/study_predictors_of_stability.py STUDY_DIR [--exclude wide_prior]

Reads ``STUDY_DIR/summary.json`` (written by ``gnnff study run`` / ``gnnff study summarize``)
and, per trained model (pretrained arms are not in ``per_model``), relates its mean Stability
Index over its runs to: the isolated-dimer short-range wall E(0.75 d_min) - E(d_min) of each
species pair (eV, ``gnnff dimer``), the invariant feature correlation (post-activation, per
pair), the residual-stream L_corr (a gauge) and the ID force MAE. ``--exclude`` drops arms
(e.g. one whose prior sets the wall by construction), to ask the question within the others.
Prints one row per predictor with rho and n, and each arm's per-seed Si-Si wall.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gnnff.study.stats import spearman  # noqa: E402


def predictors(per_model: list[dict]) -> dict[str, tuple[float, int]]:
    """{predictor: (Spearman rho vs mean S, number of models)} over ``per_model``."""
    getters = {
        "feature_corr (invariant)": lambda m: m.get("feature_corr"),
        "residual-stream L_corr (gauge)": lambda m: m.get("lcorr"),
        "ID force MAE": lambda m: m.get("force_mae"),
    }
    pairs = sorted({k for m in per_model for k in (m.get("wall_eV") or {})})
    for pair in pairs:
        getters[f"{pair} wall (eV)"] = lambda m, p=pair: (m.get("wall_eV") or {}).get(p)
    out = {}
    for name, get in getters.items():
        pts = [(get(m), m["mean_S"]) for m in per_model if get(m) is not None]
        out[name] = (spearman([x for x, _ in pts], [s for _, s in pts]), len(pts))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study", help="a study folder with summary.json")
    p.add_argument("--exclude", default="", help="comma-separated arms to leave out")
    args = p.parse_args()
    path = Path(args.study) / "summary.json"
    if not path.is_file():
        p.error(f"{path} not found: run `gnnff study summarize CONFIG --out {args.study}` first")
    per_model = json.loads(path.read_text())["per_model"]
    drop = {a for a in args.exclude.split(",") if a}
    unknown = drop - {m["variant"] for m in per_model}
    if unknown:
        p.error(f"--exclude: no arm named {sorted(unknown)} in {path}")
    models = [m for m in per_model if m["variant"] not in drop]
    print(f"{len(models)} trained models" + (f" (without {sorted(drop)})" if drop else ""))
    for name, (rho, n) in predictors(models).items():
        print(f"  Spearman rho of {name} vs mean S: {rho:+.2f} (n = {n})")
    for arm in sorted({m["variant"] for m in models}):
        walls = [
            (m["model"].rsplit("__s", 1)[-1], (m.get("wall_eV") or {}).get("Si-Si"))
            for m in models
            if m["variant"] == arm
        ]
        shown = ", ".join(f"s{s} {w:+.2f}" for s, w in sorted(walls) if w is not None)
        print(f"  {arm}: Si-Si wall per seed (eV): {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
