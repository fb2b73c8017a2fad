"""``gnnff demo``: what gnnff is for, in about 5 minutes on 2 cores.

1. quick SiO2 / SiO_x reference data, labelled by the Tersoff potential (LAMMPS); the
   stabilize round needs it for its reference labels;
2. the bundled ``sio2-allegro-baseline`` (trained on SiO2 only) runs NVT MD out of distribution
   (a-SiO1.10 at 1500 K) in ASE and in LAMMPS on 2 MPI ranks, under the same stability
   criteria;
3. one round of ``gnnff stabilize`` on the baseline from that start: failure frames -> Tersoff
   labels -> fine-tune -> the same start again;
4. ``sio2-allegro-al``, the product of the full loop (``examples/stabilize/sio2_al.yaml``), runs
   the same start in both engines;
5. the decorrelation loss, as measured (one line), and the table: model x engine -> stable time,
   Stability Index, criterion that ended the run.

Every sentence about this run's outcome is written from its reports, not in advance.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from gnnff.errors import UsageError

BASELINE, STABILIZED = "sio2-allegro-baseline", "sio2-allegro-al"
RESULTS_PAGE = "docs/results/stability_study.md, section The bench where runs fail"
DECORRELATION_LINE = (
    "Decorrelation loss, as measured: on the Tersoff SiO_x bench (6 seeds x 6 arms) none of its "
    "four variants changed stability detectably (e.g. residual p = 0.16, tensor p = 0.062, mean "
    "S 0.32 -> 0.39 / 0.42), while a short-range prior raised mean S 0.32 -> 0.99 (6 of 6 seeds, "
    f"p = 0.031): {RESULTS_PAGE}. This demo does not test it."
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="baseline fails out of distribution, gnnff stabilize fixes it (ASE and LAMMPS)",
    )
    p.add_argument("--out", default="demo_out", help="folder for data, reports and plots")
    p.add_argument("--seed", type=int, default=0, help="MD seed (and quick-data seed)")
    p.add_argument("--time-ps", type=float, default=1.0, help="length of each MD run (ps)")
    p.add_argument("--temperature", type=float, default=1500.0, help="NVT temperature (K)")
    p.add_argument("--np", type=int, default=2, help="MPI ranks of the LAMMPS runs")
    p.add_argument(
        "--skip-stabilize",
        action="store_true",
        help="leave out step 3 (the one gnnff stabilize round, about half the time)",
    )
    p.set_defaults(func=run_demo)


def _check(args: argparse.Namespace) -> None:
    if not args.time_ps > 0:
        raise UsageError(f"--time-ps must be > 0, got {args.time_ps}")
    if not args.temperature > 0:
        raise UsageError(f"--temperature must be > 0 K (an NVT target), got {args.temperature}")
    if args.np < 1:
        raise UsageError(f"--np must be >= 1, got {args.np}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; give a folder for the demo's outputs")


def _quick_data(data: Path, seed: int) -> str:
    """The quick ``sio2-tersoff`` set in ``data``: kept if an earlier demo (same seed) left it,
    else generated. Returns a one-line summary."""
    from gnnff.data.generate import generate_dataset

    manifest_path = data / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    wanted = {"preset": "sio2-tersoff", "quick": True, "seed": seed}
    reuse = all(manifest.get(k) == v for k, v in wanted.items()) and all(
        (data / name).is_file() for name in manifest.get("frames", {"missing": 0})
    )
    if not reuse:
        manifest = generate_dataset(
            "sio2-tersoff", data, seed=seed, quick=True, overwrite=True, progress=False
        )
    counts = ", ".join(
        f"{k.removesuffix('.extxyz')} {n}" for k, n in manifest["frames"].items() if "/" not in k
    )
    return counts + (" (kept from an earlier demo)" if reuse else "")


def _both(bench, label: str, model: Path, np_: int) -> list:
    rows = [bench.run_ase(label, model), bench.run_lammps(label, model, np_)]
    for r in rows:
        print(f"    {r.engine:10s} {r.verdict()}, S = {r.S:.2f}")
    return rows


def _engines_verdict(name: str, rows: list) -> str:
    failed = [r.engine for r in rows if r.failed]
    if len(failed) == len(rows):
        return f"    -> {name} failed in both engines"
    if not failed:
        return f"    -> {name} survived in both engines"
    return f"    -> {name} failed in {', '.join(failed)} only"


def run_demo(args: argparse.Namespace) -> int:
    from .runs import Bench, bundled_model, describe_model, table_lines

    _check(args)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    baseline, stabilized = bundled_model(BASELINE), bundled_model(STABILIZED)

    print("[1] reference data: quick SiO2 / SiO_x set labelled by Tersoff (LAMMPS)")
    data = out / "data"
    print("    " + _quick_data(data, args.seed))
    bench = Bench(data, out, args.temperature, args.time_ps, args.seed)
    where = (
        f"a-SiO1.10 ({len(bench.start)} atoms, Si-rich: outside the SiO2 training set) at "
        f"{args.temperature:g} K, NVT {args.time_ps:g} ps, seed {args.seed}"
    )

    print(f"\n[2] the baseline out of distribution: {where}; ASE and LAMMPS ({args.np} ranks)")
    print(f"    {describe_model(BASELINE)}")
    rows = _both(bench, "baseline", baseline, args.np)
    print(_engines_verdict("the baseline", rows))

    round_result = None
    if args.skip_stabilize:
        print("\n[3] gnnff stabilize: skipped (--skip-stabilize)")
    else:
        from .stabilize_round import FINETUNE_EPOCHS, stabilize_round

        print(
            "\n[3] gnnff stabilize, one round from the baseline on the same start: failure "
            f"frames -> Tersoff labels -> fine-tune {FINETUNE_EPOCHS} epochs -> run again"
        )
        round_result = stabilize_round(
            out, data, baseline, args.temperature, args.time_ps, args.seed
        )
        _print_round(round_result)

    print(f"\n[4] the product of the full loop on the same start: {where}")
    print(f"    {describe_model(STABILIZED)}")
    stable_rows = _both(bench, "al", stabilized, args.np)
    print(_engines_verdict(STABILIZED, stable_rows))
    if round_result is not None and round_result.after is not None:
        rows.append(round_result.after)
    rows += stable_rows

    print(f"\n[5] {DECORRELATION_LINE}")
    print(f"\nstability, the same start in every run ({args.time_ps:g} ps each):")
    for line in table_lines(rows):
        print("    " + line)
    print(
        f"    baseline = {BASELINE}, al = {STABILIZED}; one start and one seed: an "
        "illustration. Measured over held-out starts: docs/results/bundled_models.md"
    )
    if round_result is not None and round_result.after is not None:
        print(
            "    ASE (loop): the stabilize explorer (close contacts judged against the training "
            "set; no RDF check)"
        )
    print(f"report plots: {out}/runs/*/report.png")
    print(f"demo finished in {time.perf_counter() - t0:.0f} s; outputs in {out}/")
    return 0


def _print_round(result) -> None:
    print(f"    explored with the baseline: {result.before.verdict()}, S = {result.before.S:.2f}")
    if result.after is None:
        print("    (the baseline survived this start: nothing to label, no retraining)")
        return
    print(
        f"    {result.frames_labelled} frames up to the failure labelled by Tersoff, added to "
        "the quick training set, fine-tuned"
    )
    print(
        f"    the fine-tuned model on the same start: {result.after.verdict()}, "
        f"S = {result.after.S:.2f} (was {result.before.S:.2f})"
    )
    if result.after.failed:
        outcome = (
            f"one short round delayed the failure ({result.before.stable_ps:.3f} -> "
            f"{result.after.stable_ps:.3f} ps) but did not remove it"
        )
        if result.after.stable_ps <= result.before.stable_ps:
            outcome = "one short round on the quick set did not delay the failure"
    else:
        outcome = "one short round stabilized this start (one run: an illustration)"
    print(
        f"    {outcome}; the full loop (6 starts, 36 frames, 15 epochs on 528 frames) made "
        f"{STABILIZED}. {result.seconds:.0f} s; report: {result.report}"
    )
