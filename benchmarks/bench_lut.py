"""LUT-softmax emulator vs torch float softmax, dense and segment forms, side by side.

Run ``python benchmarks/bench_lut.py [--quick]``. Each sample times a batch of calls lasting
about 20 ms; system CPU use is recorded with psutil during each sample and samples where other
processes kept the CPUs busy are dropped (kept anyway, and flagged, if too few stay). Reported
times are medians per call, in ms, single-threaded (torch.set_num_threads(1)).
"""

import argparse
import statistics
import time
from collections.abc import Callable

import psutil
import torch

from gnnff.lut_accel.backends import float_segment_softmax, make_softmax_backend

BUSY_MARGIN = 30.0  # % of total CPU above our own share that marks a sample as disturbed


def _time_call(fn: Callable[[], object], samples: int, warmup: int, target_s: float = 0.02):
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    fn()
    reps = max(1, int(target_s / max(time.perf_counter() - t0, 1e-7)))
    own_share = 100.0 * torch.get_num_threads() / (psutil.cpu_count() or 1)
    kept: list[float] = []
    busy: list[float] = []
    for _ in range(samples):
        psutil.cpu_percent(interval=None)
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        dt = (time.perf_counter() - t0) / reps
        load = psutil.cpu_percent(interval=None)
        (busy if load > own_share + BUSY_MARGIN else kept).append(dt)
    flagged = len(kept) < 3
    use = kept + busy if flagged else kept
    return {
        "median_ms": 1e3 * statistics.median(use),
        "min_ms": 1e3 * min(use),
        "reps_per_sample": reps,
        "samples_kept": len(kept),
        "samples_dropped": len(busy),
        "busy": flagged,
    }


def run(quick: bool = False) -> list[dict]:
    """Time float vs LUT softmax (dense [G, n] and segment over E edges / G groups)."""
    torch.set_num_threads(1)
    samples, warmup = (5, 2) if quick else (15, 3)
    groups, per_group = (400, 25) if quick else (2000, 25)
    edges = groups * per_group
    gen = torch.Generator().manual_seed(0)
    dense_x = torch.randn(groups, per_group, generator=gen) * 2
    seg_x = torch.randn(edges, generator=gen) * 2
    segment = torch.randint(0, groups, (edges,), generator=gen)
    backends: list[tuple[str, int | None]] = [("float", None)] + [
        (name, b) for b in (8, 16) for name in ("lut-rexp", "lut-2d")
    ]
    rows: list[dict] = []
    with torch.no_grad():
        for name, bits in backends:
            mod = make_softmax_backend(name, bits)
            if name == "float":
                dense_fn = lambda: torch.softmax(dense_x, -1)  # noqa: E731
                seg_fn = lambda: float_segment_softmax(seg_x, segment, groups)  # noqa: E731
            else:
                dense_fn = lambda m=mod: m.dense(dense_x, -1)  # noqa: E731
                seg_fn = lambda m=mod: m(seg_x, segment, groups)  # noqa: E731
            for form, fn, shape in (("dense", dense_fn, f"{groups}x{per_group}"),
                                    ("segment", seg_fn, f"{edges} edges/{groups} groups")):
                row = {"form": form, "shape": shape, "backend": name, "bits": bits}
                row.update(_time_call(fn, samples, warmup))
                rows.append(row)
    base = {r["form"]: r["median_ms"] for r in rows if r["backend"] == "float"}
    for r in rows:
        r["x_float"] = r["median_ms"] / base[r["form"]]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer samples")
    args = parser.parse_args()
    rows = run(quick=args.quick)
    print(f"{'form':<8}{'shape':<26}{'backend':<10}{'bits':>5}{'median ms':>11}{'min ms':>9}"
          f"{'x float':>9}{'kept/dropped':>14}")
    for r in rows:
        flag = " busy" if r["busy"] else ""
        print(f"{r['form']:<8}{r['shape']:<26}{r['backend']:<10}{str(r['bits'] or '-'):>5}"
              f"{r['median_ms']:>11.3f}{r['min_ms']:>9.3f}{r['x_float']:>9.1f}"
              f"{r['samples_kept']:>8}/{r['samples_dropped']}{flag}")


if __name__ == "__main__":
    main()
