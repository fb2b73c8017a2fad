"""LUT-softmax emulator vs torch float softmax, dense and segment forms, side by side.

    python benchmarks/bench_lut.py [--quick]

All backends of one form are timed interleaved (``timing.timed_side_by_side``), each sample
a batch of calls lasting >= 100 ms (CPU-time ticks are 10 ms); samples during which
other processes used more than 15 % of the machine are dropped. Times are medians per call,
in ms, single-threaded (torch.set_num_threads(1)); ``x_float`` is the ratio to torch's float
softmax.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from timing import busy_columns, timed_side_by_side  # noqa: E402

BACKENDS: list[tuple[str, int | None]] = [("float", None)] + [
    (name, b) for b in (8, 16) for name in ("lut-rexp", "lut-2d")
]


def run(quick: bool = False) -> list[dict]:
    """Time float vs LUT softmax (dense [G, n] and segment over E edges / G groups)."""
    import torch

    from gnnff.potentials.softmax import make_softmax_backend
    from gnnff.segment_ops import float_segment_softmax

    torch.set_num_threads(1)
    repeats, warmup = (5, 2) if quick else (15, 3)
    groups, per_group = (400, 25) if quick else (2000, 25)
    edges = groups * per_group
    gen = torch.Generator().manual_seed(0)
    dense_x = torch.randn(groups, per_group, generator=gen) * 2
    seg_x = torch.randn(edges, generator=gen) * 2
    segment = torch.randint(0, groups, (edges,), generator=gen)
    dense, seg = {}, {}
    for name, bits in BACKENDS:
        key = (name, bits)
        if name == "float":
            dense[key] = lambda: torch.softmax(dense_x, -1)  # noqa: E731
            seg[key] = lambda: float_segment_softmax(seg_x, segment, groups)  # noqa: E731
        else:
            mod = make_softmax_backend(name, bits)
            dense[key] = lambda m=mod: m.dense(dense_x, -1)  # noqa: E731
            seg[key] = lambda m=mod: m(seg_x, segment, groups)  # noqa: E731
    rows: list[dict] = []
    with torch.no_grad():
        for form, fns, shape in (
            ("dense", dense, f"{groups}x{per_group}"),
            ("segment", seg, f"{edges} edges/{groups} groups"),
        ):
            res = timed_side_by_side(fns, repeats, warmup, min_sample_s=0.1)
            base = res[("float", None)]["median_s"]
            for (name, bits), r in res.items():
                rows.append(
                    {
                        "form": form,
                        "shape": shape,
                        "backend": name,
                        "bits": bits,
                        "median_ms": 1e3 * r["median_s"],
                        "min_ms": 1e3 * r["min_s"],
                        "x_float": r["median_s"] / base,
                        "calls_per_sample": r["calls_per_sample"],
                        **busy_columns(r),
                    }
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer samples")
    args = parser.parse_args()
    from run_all import format_table

    print(format_table(run(quick=args.quick)))


if __name__ == "__main__":
    main()
