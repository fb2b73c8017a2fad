"""``stabilize.md`` and ``stabilize.png``: mean Stability Index, median stable time and frames
added per round of the active-learning loop; for a one-exploration evaluation (``max_rounds: 0``,
e.g. held-out starts) the plot shows each run's stable time and what ended it instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gnnff.data.reference import reference_label
from gnnff.errors import MissingExtraError, require_extra
from gnnff.io_utils import atomic_write, atomic_write_text


def round_table(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per round: runs, mean S, median stable time (ps), runs with S = 1, frames added,
    CPU seconds of the round's units."""
    rows = []
    for info in summary["rounds"]:
        s = [r["stability_index"] for r in info["runs"]]
        t = [r["stable_time_ps"] for r in info["runs"]]
        rows.append(
            {
                "round": info["round"],
                "runs": len(s),
                "mean_S": float(np.mean(s)),
                "median_stable_ps": float(np.median(t)),
                "S_eq_1": int(sum(x >= 1.0 for x in s)),
                "frames_added": info["frames_added"],
                "cpu_s": float(sum(info.get("cpu_s", {}).values())),
            }
        )
    return rows


def committee_lines(summary: dict[str, Any]) -> list[str]:
    """The committee table (DP-GEN's accurate / candidate / failed fractions of the checked
    frames per round); no lines when the loop ran without ``select.committee``."""
    rounds = [i for i in summary["rounds"] if i.get("committee")]
    if not rounds:
        return []
    com = summary.get("committee") or {}
    lines = [
        "",
        "Committee max force deviation of the checked frames (DP-GEN, Zhang et al., Comput. "
        "Phys. Commun. 253, 107206 (2020)): accurate dev < f_lo, candidate f_lo <= dev < f_hi, "
        f"failed dev >= f_hi (K = {com.get('size', '?')} models, f_lo = {com.get('f_lo', 0):g}, "
        f"f_hi = {com.get('f_hi', 0):g} eV/A):",
        "",
        "| round | checked | accurate | candidate | failed | committee frames selected |",
        "|---|---|---|---|---|---|",
    ]
    for info in rounds:
        c = info["committee"]
        n = max(c["checked"], 1)
        lines.append(
            f"| {info['round']} | {c['checked']} | {c['accurate'] / n:.1%} | "
            f"{c['candidate'] / n:.1%} | {c['failed'] / n:.1%} | "
            f"{info.get('committee_selected', 0)} |"
        )
    return lines


def bootstrap_lines(summary: dict[str, Any]) -> list[str]:
    """What round 0 trained on when the loop started from no data (no lines otherwise)."""
    boot = summary.get("bootstrap")
    if not boot:
        return []
    labels = boot.get("labels", {})
    by = reference_label(labels)
    skipped = sum(len(v) for v in labels.get("skipped", {}).values())
    frames = ", ".join(f"{name} {n}" for name, n in boot["frames"].items())
    return [
        f"Bootstrap from no data: preset {boot['preset']} (seed {boot['seed']}), every frame "
        f"labelled by {by} ({skipped} skipped); round 0 trained on it. Frames: {frames}.",
        "",
    ]


def write_report(summary: dict[str, Any], out: Path) -> None:
    rows = round_table(summary)
    lines = [
        "# gnnff stabilize",
        "",
        f"Status: **{summary['status']}**; final model `{summary['final_model']}`; "
        f"{summary['frames_added_total']} labelled frames added. Close contacts judged against "
        f"the {summary['reference']}.",
        "",
        "Round r explores with the model of round r-1; frames added in round r train the model "
        "of round r.",
        "",
        *bootstrap_lines(summary),
        "| round | runs | mean S | median stable (ps) | S = 1 | frames added | CPU s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['round']} | {r['runs']} | {r['mean_S']:.3f} | "
            f"{r['median_stable_ps']:.3g} | {r['S_eq_1']} | {r['frames_added']} | "
            f"{r['cpu_s']:.0f} |"
        )
    lines += committee_lines(summary)
    lines += [
        "",
        "Runs of the last round:",
        "",
        "| run | structure | T (K) | S | stable (ps) | ended by |",
        "|---|---|---|---|---|---|",
    ]
    for run in summary["rounds"][-1]["runs"]:
        end = run["failed_criterion"] or "-"
        if run.get("failed_pair"):
            end += f" ({run['failed_pair']})"
        lines.append(
            f"| {run['run']} | {run['structure']} | {run['temperature']:.0f} | "
            f"{run['stability_index']:.3f} | {run['stable_time_ps']:.3g} | {end} |"
        )
    atomic_write_text(out / "stabilize.md", "\n".join(lines) + "\n")
    evaluation = len(rows) == 1 and not summary["frames_added_total"]
    try:
        if evaluation:
            _plot_runs(summary["rounds"][0]["runs"], out / "stabilize.png")
        else:
            _plot(rows, out / "stabilize.png")
    except MissingExtraError as exc:
        print(f"note: stabilize.png skipped: {exc}")
    except Exception as exc:  # noqa: BLE001 - a plot must never lose a finished loop
        print(f"warning: stabilize.png not written: {exc}")


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    require_extra("matplotlib", "plots", "stabilize.png")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = [r["round"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    axes[0].plot(x, [r["mean_S"] for r in rows], "o-")
    axes[0].set(xlabel="round", ylabel="mean Stability Index", ylim=(0, 1.05))
    axes[1].semilogy(x, [max(r["median_stable_ps"], 1e-4) for r in rows], "o-")
    axes[1].set(xlabel="round", ylabel="median stable time (ps)")
    axes[2].bar(x, [r["frames_added"] for r in rows])
    axes[2].set(xlabel="round", ylabel="labelled frames added")
    for ax in axes:
        ax.set_xticks(x)  # rounds are integers
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)


def _plot_runs(runs: list[dict[str, Any]], path: Path) -> None:
    """One bar per run: its stable time (ps), green at S = 1, red with the criterion (and pair)
    that ended it otherwise; the dashed line is the run length."""
    require_extra("matplotlib", "plots", "stabilize.png")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lengths = [r["stable_time_ps"] / r["stability_index"] for r in runs if r["stability_index"] > 0]
    t_run = max(lengths, default=max((r["stable_time_ps"] for r in runs), default=1.0))
    ok = sum(r["stability_index"] >= 1.0 for r in runs)
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(runs) + 1.4))
    y = np.arange(len(runs))[::-1]
    for yi, r in zip(y, runs, strict=True):
        stable = r["stability_index"] >= 1.0
        ax.barh(yi, r["stable_time_ps"], color="tab:green" if stable else "tab:red")
        if not stable:
            why = (r.get("failed_criterion") or "failed") + (
                f" ({r['failed_pair']})" if r.get("failed_pair") else ""
            )
            ax.text(r["stable_time_ps"] + 0.01 * t_run, yi, why, va="center", fontsize=8)
    ax.axvline(t_run, color="k", ls="--", lw=0.8)
    labels = [f"{r['run']}: {Path(str(r['structure'])).stem} {r['temperature']:.0f} K"
              for r in runs]  # fmt: skip
    ax.set_yticks(y, labels, fontsize=8)
    ax.set(xlabel="stable time (ps)", xlim=(0, 1.25 * t_run),
           title=f"{ok} / {len(runs)} runs at S = 1 over {t_run:.3g} ps")  # fmt: skip
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)
