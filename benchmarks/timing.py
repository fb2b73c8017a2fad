"""Timing helpers for the benchmarks: warm-up, medians, and machine-busy filtering.

The machines are shared and noisy. For each timed sample we record how much CPU the REST of
the machine used meanwhile (machine busy CPU time minus this process's own CPU time, as a
percentage of the machine's capacity over the sample); samples where that exceeded
``busy_threshold`` are dropped. CPU times tick at ~10 ms, so fast functions are called
several times per sample (``min_sample_s``) for the busy figure to mean something.

``timed_side_by_side`` interleaves the contenders (A B C A B C ...) so that any remaining
load hits all of them alike; ratios between its results are the benchmarks' figures.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import psutil

_PROC = psutil.Process()
NCPU = psutil.cpu_count() or 1


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine (all cores) since boot."""
    t = psutil.cpu_times()
    return t.user + t.system + sum(getattr(t, k, 0.0) for k in ("nice", "irq", "softirq"))


def own_cpu_s(proc: psutil.Process | None = None) -> float:
    """CPU seconds (all threads, plus waited-for children) of ``proc`` (default: this one)."""
    t = (proc or _PROC).cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def others_pct(machine_s: float, own_s: float, wall_s: float) -> float:
    """Percent of the machine's capacity over ``wall_s`` used by others, from the machine's
    and our own CPU-second deltas."""
    return 100.0 * max(0.0, machine_s - own_s) / max(wall_s * NCPU, 1e-9)


def others_busy_pct(fn: Callable[[], object], inner: int = 1) -> tuple[float, float]:
    """Run ``fn`` ``inner`` times; return (wall seconds per call, percent of the machine's CPU
    used by other processes meanwhile)."""
    m0, o0, t0 = machine_busy_s(), own_cpu_s(), time.perf_counter()
    for _ in range(inner):
        fn()
    dt = time.perf_counter() - t0
    return dt / inner, others_pct(machine_busy_s() - m0, own_cpu_s() - o0, dt)


def summarize(samples: list[tuple[float, float]], busy_threshold: float = 15.0) -> dict:
    """Row fields from (seconds, others %) samples: median/min of the quiet ones (all of them,
    flagged ``all_busy``, when none was quiet), counts and the others' load."""
    quiet = [dt for dt, busy in samples if busy <= busy_threshold]
    kept = quiet or [dt for dt, _ in samples]
    return {
        "median_s": statistics.median(kept),
        "min_s": min(kept),
        "kept": len(kept),
        "dropped_busy": len(samples) - len(quiet) if quiet else 0,
        "all_busy": not quiet,
        "others_pct": round(statistics.median(b for _, b in samples), 1),
        "max_others_pct": round(max(b for _, b in samples), 1),
    }


def _inner_reps(fn: Callable[[], object], min_sample_s: float) -> int:
    t0 = time.perf_counter()
    fn()
    return max(1, math.ceil(min_sample_s / max(time.perf_counter() - t0, 1e-7)))


def timed_calls(
    fn: Callable[[], object],
    repeats: int = 7,
    warmup: int = 2,
    busy_threshold: float = 15.0,
    min_sample_s: float = 0.0,
) -> dict:
    """Median wall time (s per call) of ``fn`` over ``repeats`` samples after ``warmup``
    calls, dropping samples during which other processes used more than ``busy_threshold`` %
    of the machine (see ``summarize``). Each sample repeats ``fn`` enough to last
    ``min_sample_s``."""
    res = timed_side_by_side({"_": fn}, repeats, warmup, busy_threshold, min_sample_s)["_"]
    res.pop("samples")
    return res


def timed_side_by_side(
    fns: dict[str, Callable[[], object]],
    repeats: int = 7,
    warmup: int = 2,
    busy_threshold: float = 15.0,
    min_sample_s: float = 0.0,
) -> dict[str, dict]:
    """``timed_calls`` for several functions at once, their samples interleaved; returns one
    result per key of ``fns`` (plus ``calls_per_sample``)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):  # round-robin: TorchScript modules re-specialise when interleaved
        for fn in fns.values():
            fn()
    inner = {k: _inner_reps(fn, min_sample_s) if min_sample_s > 0 else 1 for k, fn in fns.items()}
    samples: dict[str, list[tuple[float, float]]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            samples[k].append(others_busy_pct(fn, inner[k]))
    return {
        k: {**summarize(s, busy_threshold), "calls_per_sample": inner[k], "samples": s}
        for k, s in samples.items()
    }


def timed_balanced(
    fns: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 2
) -> dict[str, dict]:
    """``timed_side_by_side`` with half the rounds in the given order and half in the reverse:
    the first function of a round measured a few % slow on this machine (seen with two
    identical settings), so no contender keeps that place. Same result fields."""
    forward = timed_side_by_side(fns, (repeats + 1) // 2, warmup)
    backward = timed_side_by_side(dict(reversed(fns.items())), max(repeats // 2, 1), warmup=0)
    out = {}
    for k in fns:
        samples = forward[k]["samples"] + backward[k]["samples"]
        out[k] = {**summarize(samples), "calls_per_sample": 1, "samples": samples}
    return out


def paired_ratio(res: dict[str, dict], key: str, ref: str, busy_threshold: float = 15.0) -> float:
    """Median over rounds of ``key``'s time / ``ref``'s time in the same round of a
    ``timed_side_by_side`` result, rounds where either sample was busy dropped. Pairing cancels
    the slow drifts (frequency, neighbours) that dominate the spread of the raw medians."""
    ratios = [
        a / b
        for (a, ba), (b, bb) in zip(res[key]["samples"], res[ref]["samples"], strict=True)
        if ba <= busy_threshold and bb <= busy_threshold
    ]
    if not ratios:
        ratios = [
            a / b for (a, _), (b, _) in zip(res[key]["samples"], res[ref]["samples"], strict=True)
        ]
    return statistics.median(ratios)


def busy_columns(res: dict) -> dict:
    """The busy bookkeeping of a timing result, for a table row."""
    return {k: res[k] for k in ("kept", "dropped_busy", "all_busy", "others_pct", "max_others_pct")}
