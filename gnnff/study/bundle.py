"""Ship trained models inside the package: re-export with their measured figures in metadata.

A bundled model records how it was trained (its training summary), its energy/force MAE on
the small test set of its material and labels committed beside it
(``pretrained/sio2_test_small.extxyz`` for Tersoff labels, ``sio2_sevennet_test_small.extxyz``
and ``hfo2_test_small.extxyz`` for SevenNet-0's; a test re-measures it), and the Stability
Index of the MD runs it was judged on.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from gnnff.errors import UsageError
from gnnff.potentials.bundled import PRETRAINED_DIR as PRETRAINED
from gnnff.potentials.bundled import SMALL_TEST_SET as SMALL_TEST
from gnnff.potentials.bundled import label_teacher, neutral_paths, small_test_set

SPLITS_SIO2 = ("test_id", "ood_SiO1.55", "ood_SiO1.10")


def write_small_test_set(
    data_dir: str | Path,
    per_split: int = 6,
    splits: tuple[str, ...] = SPLITS_SIO2,
    out: str | Path = SMALL_TEST,
) -> Path:
    """A few frames of every evaluation split (``splits``: the ID test and the OOD splits of
    the data set in ``data_dir``), evenly spaced, written to ``out``: the set on which a test
    re-measures the bundled models' recorded MAE."""
    import ase.io
    import numpy as np

    frames = []
    for split in splits:
        src = ase.io.read(Path(data_dir) / f"{split}.extxyz", index=":")
        for k in np.linspace(0, len(src) - 1, per_split).round().astype(int):
            a = src[int(k)]
            a.info["split"] = split
            frames.append(a)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(out, frames, format="extxyz")
    return out


def measure_small_test(model_path: str | Path) -> dict[str, float]:
    """Energy/force MAE and RMSE of ``model_path`` on the small test set of its material
    (:func:`gnnff.potentials.bundled.small_test_set`)."""
    from gnnff.potentials import read_metadata
    from gnnff.training.evaluation import evaluate_model_file

    meta = read_metadata(model_path)
    data = small_test_set(list(meta["species"]), label_teacher(meta))
    res = evaluate_model_file(model_path, data)
    return {k: res[k] for k in ("energy_mae", "force_mae", "energy_rmse", "force_rmse")}


def check_bundle_args(model_path: str | Path, name: str, data_dir: str | Path) -> None:
    """Fail fast (before the stability runs) on a bad registry name, model or data folder."""
    from gnnff.potentials import read_metadata

    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*", name) or name.endswith(".pt"):
        raise UsageError(
            f"registry name {name!r}: use lower-case letters, digits, '.', '_' "
            "and '-' (e.g. sio2-allegro-decorrelated), no path and no .pt suffix"
        )
    read_metadata(model_path)  # raises with a clear message for a missing / non-gnnff file
    data = Path(data_dir)
    missing = [
        n for n in ("train.extxyz", "test_id.extxyz", "reference_md") if not (data / n).exists()
    ]
    if missing:
        raise FileNotFoundError(
            f"--data {data} lacks {', '.join(missing)}: give the data set "
            "folder the model was trained on (`gnnff data generate`)"
        )


def bundle_model(
    model_path: str | Path,
    name: str,
    stability: dict[str, Any] | None,
    evaluation: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    stability_reference: dict[str, Any] | None = None,
) -> Path:
    """Re-export ``model_path`` as ``pretrained/<name>.pt`` with a ``bundle`` block in its
    training metadata: registry name, small-test-set MAE, full evaluation, stability, and the
    items of ``extra`` (e.g. ``active_learning``). ``stability_reference`` (a
    ``StabilityReference.to_dict()``) replaces the close-contact reference the file carries:
    an active-learning model keeps its base training set's, not that of the frames added for
    the very contacts that made runs fail."""
    from gnnff.potentials import eager_from_file, export_model, read_metadata

    meta = read_metadata(model_path)
    summary = dict(meta.get("training") or {})
    if stability_reference is not None:
        summary["stability_reference"] = stability_reference
    elif "stability_reference" not in summary:  # a model trained before gnnff stored it
        summary["stability_reference"] = _training_reference(summary, float(meta["cutoff"]))
    out = PRETRAINED / f"{name}.pt"
    summary["bundle"] = {
        "name": name,
        "source": Path(model_path).name,
        "small_test_set": small_test_set(list(meta["species"]), label_teacher(meta)).name,
        "small_test_mae": measure_small_test(model_path),
        "evaluation": evaluation,
        "stability": stability,
        "units": {"energy_mae": "meV/atom", "force_mae": "meV/A"},
        **(extra or {}),
    }
    # export beside the target, check the size, then rename: an oversized or half-written
    # file never lands in the package
    tmp = out.with_name(f".{name}.bundle.tmp.pt")
    try:
        export_model(
            eager_from_file(model_path),
            tmp,
            dtype=meta.get("dtype", "float64"),
            training_summary=json.loads(json.dumps(neutral_paths(summary))),  # no machine path
        )
        size = tmp.stat().st_size
        if size > 5 * 1024 * 1024:
            raise UsageError(
                f"{name} would be {size / 1e6:.1f} MB: bundled models must stay "
                "under 5 MB (train a smaller model: fewer channels or layers)"
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _training_reference(summary: dict[str, Any], cutoff: float) -> dict[str, Any]:
    """Per-pair minimum distances of the training set the summary names (checked against its
    recorded hash), as the trainer now stores them."""
    from gnnff.io_utils import sha256_file
    from gnnff.stability.reference import StabilityReference

    train = (summary.get("data") or {}).get("train") or {}
    if not train.get("path"):
        raise UsageError(
            "the model file records no training set (exported without a training "
            "summary): bundle the model.pt that `gnnff train` wrote instead"
        )
    path = Path(train["path"])
    if not path.is_file() or sha256_file(path) != train.get("sha256"):
        raise FileNotFoundError(
            f"the model's training set {path} is missing or changed (sha256 differs from the "
            "model's record): it is needed to store the close-contact reference; regenerate "
            "it with `gnnff data generate` using the same seed"
        )
    import ase.io

    ref = StabilityReference.from_frames(
        ase.io.read(path, index=":"), with_rdf=False, distance_cutoff=cutoff
    )
    ref.source = f"training set {path} (sha256 {train['sha256'][:12]})"
    return ref.to_dict()


def stability_check(
    model_path: str | Path,
    data_dir: str | Path,
    out_dir: str | Path,
    systems: tuple[str, ...] = ("SiO2", "SiO1.55", "SiO1.10"),
    temperature: float = 1000.0,
    n_starts: int = 2,
    time_ps: float = 5.0,
    jobs: int = 2,
) -> dict[str, Any]:
    """NVT runs of one model from reference-MD starting structures, under the study's
    stability criteria; returns ``summarize_runs`` of their reports plus the settings."""
    from concurrent.futures import ProcessPoolExecutor

    from gnnff.stability import summarize_runs
    from gnnff.study.config import DEFAULTS
    from gnnff.study.md_run import md_unit
    from gnnff.study.units import MDUnit, ModelUnit

    md = dict(DEFAULTS["md"])
    md.update(
        {
            "systems": {
                s: {
                    "starts": f"reference_md/a-{s}_{{T}}K.extxyz",
                    "reference": f"reference_md/a-{s}_{{T}}K.extxyz",
                }
                for s in systems
            },
            "n_starts": n_starts,
            "temperatures": [temperature],
            "time_ps": time_ps,
            "dtype": "float32",
            "stability": {"interval": 20},
        }
    )
    cfg = {"data": {"dir": str(Path(data_dir).resolve())}, "md": md, "threads": 1}
    unit_model = ModelUnit("model", "bundle", 0)
    units = [MDUnit(unit_model, s, temperature, k) for s in systems for k in range(n_starts)]
    out = Path(out_dir)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        reports = list(
            pool.map(
                md_unit,
                [cfg] * len(units),
                units,
                [str(model_path)] * len(units),
                [str(out / u.id) for u in units],
            )
        )
    summary = summarize_runs(reports)
    return {
        "settings": {
            "systems": list(systems),
            "temperature_K": temperature,
            "starts_per_system": n_starts,
            "time_ps": time_ps,
            "ensemble": "nvt (langevin, tau 100 fs)",
            "dt_fs": 1.0,
        },
        "median_stable_ps": summary.get("median_stable_time_ps"),
        "mean_stability_index": summary.get("mean_stability_index"),
        "fraction_stable": summary.get("fraction_stable"),
        "ended_by": summary.get("ended_by"),
        "runs": [
            {
                "system": u.system,
                "start": u.start,
                "stable_time_ps": r.get("stable_time_ps"),
                "stability_index": r.get("stability_index"),
                "failed_criterion": r.get("failed_criterion"),
            }
            for u, r in zip(units, reports, strict=True)
        ],
    }
