"""Run every benchmark in this folder and print one table (``make bench``).

Each ``bench_*.py`` exposes ``run(quick: bool = False) -> list[dict]``; rows are printed as
they come and all rows are written to ``bench_out/results.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def format_table(rows: list[dict]) -> str:
    if not rows:
        return "(no rows)"
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]

    def fmt(v):
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    widths = {c: max(len(c), *(len(fmt(r.get(c, ""))) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines.append("  ".join("-" * widths[c] for c in cols))
    lines += ["  ".join(fmt(r.get(c, "")).ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    ap.add_argument("--only", nargs="*", help="benchmark module names, e.g. bench_lut")
    ap.add_argument("--out", default="bench_out")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(HERE.parent))
    results = {}
    for path in sorted(HERE.glob("bench_*.py")):
        if args.only and path.stem not in args.only:
            continue
        t0 = time.perf_counter()
        print(f"\n=== {path.stem} ===", flush=True)
        try:
            rows = load(path).run(quick=args.quick)
        except Exception as exc:  # one broken benchmark must not hide the others
            print(f"FAILED: {type(exc).__name__}: {exc}")
            rows = [{"error": f"{type(exc).__name__}: {exc}"}]
        print(format_table(rows))
        print(f"({time.perf_counter() - t0:.0f} s)")
        results[path.stem] = rows
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nall rows: {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
