"""Timing helpers for the benchmarks: warm-up, medians, and machine-busy filtering.

The machines are shared and noisy. For each timed call we record how much CPU the REST of
the machine used meanwhile (machine busy CPU time minus this process's own CPU time, as a
percentage of the machine's capacity over the call); calls where that exceeded
``busy_threshold`` are dropped.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import psutil

_PROC = psutil.Process()


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.system + getattr(t, "nice", 0.0) + getattr(t, "irq", 0.0) + getattr(
        t, "softirq", 0.0)


def _own_cpu() -> float:
    t = _PROC.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def others_busy_pct(fn: Callable[[], object]) -> tuple[float, float]:
    """Run ``fn`` once; return (wall seconds, percent of machine CPU used by others)."""
    m0, o0, t0 = _machine_busy(), _own_cpu(), time.perf_counter()
    fn()
    dt = time.perf_counter() - t0
    m1, o1 = _machine_busy(), _own_cpu()
    ncpu = psutil.cpu_count() or 1
    other = max(0.0, (m1 - m0) - (o1 - o0))
    return dt, 100.0 * other / max(dt * ncpu, 1e-9)


def timed_calls(fn: Callable[[], object], repeats: int = 7, warmup: int = 2,
                busy_threshold: float = 15.0) -> dict:
    """Median wall time (s) of ``fn`` over ``repeats`` calls after ``warmup`` calls, dropping
    calls during which other processes used more than ``busy_threshold`` % of the machine
    (all are kept if every call was busy; the row then says ``all_busy``)."""
    for _ in range(warmup):
        fn()
    samples = [others_busy_pct(fn) for _ in range(repeats)]
    quiet = [dt for dt, busy in samples if busy <= busy_threshold]
    kept = quiet or [dt for dt, _ in samples]
    return {
        "median_s": statistics.median(kept),
        "min_s": min(kept),
        "kept": len(kept),
        "dropped_busy": len(samples) - len(quiet) if quiet else 0,
        "all_busy": not quiet,
        "max_others_pct": round(max(b for _, b in samples), 1),
    }
