"""How much of a student's energy error on other compositions is a per-species offset?

    python benchmarks/composition_offset.py --model sio2-allegro-sevennet \
        --fit 'examples/data/sio2-sevennet/reference_md/*.extxyz' --every 10 \
        --test 'examples/data/sio2-heldout/glass-*/reference_md/*.extxyz' \
        --id examples/data/sio2-sevennet-test/test_id.extxyz

A shift of the per-species reference energies (E0s), E -> E + sum_s n_s delta_s, changes no
force, stress or MD trajectory, only energies compared across compositions. The script fits
delta_s by least squares to the student's energy errors against the teacher's labels on
``--fit`` frames (every ``--every``-th frame), once freely and once with the fit constrained to
leave the ``--id`` composition's energy unchanged, and reports the energy MAE (meV/atom) on the
``--test`` frames (grouped by file name) and on ``--id`` before and after. ``--write OUT.pt``
writes a copy of the model whose per-species energies lose the ID-kept offset, with the fit
recorded in its metadata (``training.energy_offset``); forces, stresses and MD are unchanged
(the shift is a constant per atom). The fit frames must not be test frames (the SiO_x data
set's own reference-MD glasses, seed 0, against held-out glasses of seeds 1-3).
"""

from __future__ import annotations

import argparse
import glob
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    from ase.io import read

    from gnnff.potentials import read_metadata
    from gnnff.potentials.bundled import model_file
    from gnnff.training.e0s import energy_errors, fit_energy_offset, write_shifted_e0s

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="model file or bundled name")
    ap.add_argument("--fit", required=True, help="glob of teacher-labelled frames to fit on")
    ap.add_argument("--every", type=int, default=10, help="use every N-th fit frame")
    ap.add_argument("--test", required=True, help="glob of teacher-labelled test frames")
    ap.add_argument("--id", required=True, help="frames of the training composition")
    ap.add_argument("--write", type=Path, help="write the model with the ID-kept shift here")
    args = ap.parse_args(argv)
    path = model_file(args.model)
    species = list(read_metadata(path)["species"])

    def errors(frames) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(model - teacher energy [F] in eV, species counts [F, S], atoms [F])."""
        e = energy_errors(path, frames)
        return e["err"], e["counts"], e["counts"].sum(axis=1)

    fit_files = sorted(glob.glob(args.fit))
    test_files = sorted(glob.glob(args.test))
    if not fit_files or not test_files:
        raise SystemExit(f"no frames: --fit matched {len(fit_files)}, --test {len(test_files)}")
    fit = [a for f in fit_files for a in read(f, f"::{args.every}")]
    err, counts, _ = errors(fit)
    ide, idc, idn = errors(read(args.id, ":"))
    keep = idc[0] / idc[0].sum()
    deltas = {
        "free": fit_energy_offset(err, counts),
        "ID kept": fit_energy_offset(err, counts, keep),
    }
    for name, d in deltas.items():
        shift = ", ".join(f"{s} {v:+.3f}" for s, v in zip(species, d, strict=True))
        print(f"{name} fit on {len(fit)} frames: delta (eV) {shift}")
    groups: dict[str, list] = defaultdict(list)
    for f in test_files:
        groups[Path(f).stem].extend(read(f, ":"))
    print("\n| frames | n | energy MAE before | after (free fit) | after (ID kept) |")
    print("|---|---|---|---|---|")
    rows = [("ID: " + Path(args.id).stem, ide, idc, idn)]
    for g, frames in groups.items():
        rows.append(("test: " + g, *errors(frames)))
    for label, e, c, n in rows:
        cols = [np.abs(e / n).mean() * 1e3] + [np.abs((e - c @ d) / n).mean() * 1e3
                                                for d in deltas.values()]  # fmt: skip
        print(f"| {label} | {len(e)} | " + " | ".join(f"{v:.1f}" for v in cols) + " |")
    if args.write:
        delta = deltas["ID kept"]
        record = {
            "shift_added_eV": dict(zip(species, [float(-v) for v in delta], strict=True)),
            "method": "least squares of the energy error against the teacher on the fit frames, "
            "constrained to leave the training composition's energies unchanged "
            "(benchmarks/composition_offset.py)",
            "fit_frames": len(fit),
            "fit_files": [Path(f).name for f in fit_files],
            "every": args.every,
        }
        print(f"wrote {write_shifted_e0s(path, delta, args.write, record)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
