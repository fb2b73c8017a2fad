"""The stability study: train, evaluate, run MD with the monitor, summarise — resumable.

Every training run, evaluation and MD run is a cached unit in ``STUDY_DIR``: a unit whose
result file exists is skipped, a training run with a checkpoint resumes, so an interrupted
study continues where it stopped (losing at most the units in flight).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from gnnff.io_utils import atomic_write, atomic_write_json
from gnnff.study.config import ARM_KEYS, StudyConfigError
from gnnff.study.md_run import md_unit, set_threads, system_file, system_name
from gnnff.study.units import MDUnit, ModelUnit, md_units, model_units

__all__ = ["MDUnit", "ModelUnit", "md_units", "model_units", "run_study", "study_status"]


def training_overrides(cfg: dict, unit: ModelUnit) -> list[str]:
    data = Path(cfg["data"]["dir"])
    sets = {
        "data.train": str(data / "train.extxyz"),
        "data.valid": str(data / "valid.extxyz"),
        "data.test": str(data / "test_id.extxyz"),
        "model.family": unit.family,
        "training.seed": unit.seed,
        "training.progress": False,
        "training.num_threads": int(cfg["threads"]),
    }
    sets.update(cfg["training"].get("set") or {})
    sets.update(
        {k: v for k, v in (cfg["variants"][unit.variant] or {}).items() if k not in ARM_KEYS}
    )
    return [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in sets.items()]


def train_unit(cfg: dict, unit: ModelUnit, run_dir: str) -> dict:
    """Train (or resume) one model; returns its training summary."""
    from gnnff.training.config import load_config
    from gnnff.training.trainer import Trainer

    set_threads(cfg["threads"])
    run = Path(run_dir)
    pretrained = (cfg["variants"][unit.variant] or {}).get("pretrained")
    if (run / "model.pt").is_file() and (run / "summary.json").is_file():
        done = json.loads((run / "summary.json").read_text())
        if done.get("pretrained") != pretrained:  # the arm was redefined: old results lie
            was = done.get("pretrained") or "a trained model"
            raise StudyConfigError(
                f"{run} holds {was}, but variants.{unit.variant} now says "
                f"{pretrained or 'train a model'}: move {run} and its eval/md results away, "
                "or use another arm name"
            )
        return done
    if pretrained:  # not trained: the arm's model file, copied so that the run folder is whole
        run.mkdir(parents=True, exist_ok=True)
        atomic_write(run / "model.pt", lambda p: shutil.copyfile(pretrained, p))
        info = {"pretrained": pretrained}
        atomic_write_json(run / "summary.json", info)
        return info
    base = cfg["training"]["base"]
    if base is None:
        raise StudyConfigError("study config needs training.base (a gnnff train YAML)")
    tcfg = load_config(base, training_overrides(cfg, unit))
    resume = (run / "checkpoint.pt").is_file()
    log_path = run / "train.log"
    run.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        trainer = Trainer(
            tcfg, run, resume=resume, log=lambda msg: (log.write(msg + "\n"), log.flush())
        )
        t0 = time.perf_counter()
        summary = trainer.fit()
    summary = dict(summary)
    summary["train_wall_s"] = time.perf_counter() - t0
    return summary


def eval_unit(cfg: dict, model_path: str, out_path: str) -> dict:
    """MAE and feature correlation of a model on every ``eval`` file."""
    from gnnff.training.evaluation import evaluate_model_file

    set_threads(cfg["threads"])
    data = Path(cfg["data"]["dir"])
    result = {name: evaluate_model_file(model_path, data / name) for name in cfg["eval"]}
    atomic_write_json(out_path, result)
    return result


def run_study(cfg: dict, out_dir: str | Path, log=print) -> dict:
    """Run (or continue) the whole study into ``out_dir``; returns the summary.

    Work goes seed by seed: all models of a seed are trained, then their evaluations and MD
    runs, before the next seed's training (at most ``jobs`` units at once). Complete results
    for the first seed arrive early, and an interrupted study has as many rows as possible.
    """
    from tqdm import tqdm

    from gnnff.study.summary import summarize_study

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "study_config.json", cfg)
    _ensure_data(cfg, log)
    _check_inputs(cfg)
    models = sorted(model_units(cfg), key=lambda m: (m.seed, m.family, m.variant))
    md_by_model: dict[ModelUnit, list[MDUnit]] = {}
    for u in md_units(cfg, models):
        md_by_model.setdefault(u.model, []).append(u)
    os.environ.setdefault("OMP_NUM_THREADS", str(cfg["threads"]))
    t0 = time.perf_counter()
    errors: list[str] = []
    total = len(models) * 2 + sum(len(v) for v in md_by_model.values())
    bar = tqdm(total=total, desc="study", unit="unit")
    # queue entries: (kind, unit, function, args); follow-up work is put in front
    queue: list[tuple] = [
        ("train", m, train_unit, (cfg, m, str(out / "train" / m.id))) for m in models
    ]
    jobs = max(1, int(cfg["jobs"]))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        running: dict = {}
        while queue or running:
            while queue and len(running) < jobs:
                queue.sort(key=_priority)  # stable: keeps submission order within a class
                kind, unit, fn, fargs = queue.pop(0)
                running[pool.submit(fn, *fargs)] = (kind, unit)
            fut = next(as_completed(running))
            kind, unit = running.pop(fut)
            bar.update()
            try:
                fut.result()
            except Exception as exc:
                errors.append(f"{kind} {unit.id}: {type(exc).__name__}: {exc}")
                log(f"[{time.perf_counter() - t0:7.0f} s] {errors[-1]}")
                if kind == "train":
                    bar.update(1 + len(md_by_model.get(unit, [])))
                continue
            if kind != "train":
                continue
            model_path = str(out / "train" / unit.id / "model.pt")
            follow = []
            target = out / "eval" / f"{unit.id}.json"
            if target.is_file():
                bar.update()
            else:
                follow.append(("eval", unit, eval_unit, (cfg, model_path, str(target))))
            follow += [
                ("md", u, md_unit, (cfg, u, model_path, str(out / "md" / unit.id / u.id)))
                for u in md_by_model.get(unit, [])
            ]
            queue += follow
    bar.close()
    if errors:
        log(f"{len(errors)} unit(s) failed; run the study again to retry them")
    return summarize_study(cfg, out)


def _priority(entry: tuple) -> tuple[int, int]:
    kind, unit = entry[0], entry[1]
    model = unit if isinstance(unit, ModelUnit) else unit.model
    return (model.seed, 0 if kind == "train" else 1)


def _check_inputs(cfg: dict) -> None:
    """Every starting-structure and evaluation file exists (checked before hours of training)."""
    data = Path(cfg["data"]["dir"])
    missing = [str(data / name) for name in cfg["eval"] if not (data / name).is_file()]
    for name, spec in cfg["md"]["systems"].items():
        starts = range(int(cfg["md"]["n_starts"])) if "{start}" in spec["starts"] else [None]
        for t in cfg["md"]["temperatures"]:
            for k in starts:
                if system_file(cfg, spec["starts"], float(t), k) is None:
                    at = f" start {k}" if k is not None else ""
                    file = system_name(spec["starts"], float(t), k)
                    missing.append(f"{data / file} (md.systems.{name} at {float(t):g} K{at})")
    if missing:
        raise FileNotFoundError(
            "study inputs not found: "
            + "; ".join(missing)
            + ". Fix the paths in the study config (relative to data.dir; {T} is the temperature, "
            "{start} the start index) or make the files (see the config's header)"
        )


def _ensure_data(cfg: dict, log) -> None:
    data = Path(cfg["data"]["dir"])
    if (data / "manifest.json").is_file():
        return
    from gnnff.data.generate import generate_dataset

    log(f"generating data set into {data}")
    generate_dataset(
        cfg["data"]["preset"],
        data,
        seed=cfg["data"]["seed"],
        quick=cfg["data"]["quick"],
        overwrite=False,
    )


def study_status(out: Path, cfg: dict, per_model: bool = False) -> dict[str, Any]:
    """Units done: models trained and MD runs finished (totals; ``per_model``: also each model's
    training epoch reached and MD runs done)."""
    import csv

    out = Path(out)
    models = model_units(cfg)
    mds = md_units(cfg, models)
    rows = []
    for m in models:
        metrics = out / "train" / m.id / "metrics.csv"
        epoch = 0
        if metrics.is_file():
            with open(metrics) as fh:
                epoch = sum(1 for _ in csv.DictReader(fh))
        runs = [u for u in mds if u.model.id == m.id]
        rows.append(
            {
                "model": m.id,
                "trained": (out / "train" / m.id / "model.pt").is_file(),
                "epochs_done": epoch,
                "md_done": sum((out / "md" / m.id / u.id / "report.json").is_file() for u in runs),
                "md_runs": len(runs),
            }
        )
    status: dict[str, Any] = {
        "models": len(models),
        "trained": sum(r["trained"] for r in rows),
        "md_runs": len(mds),
        "md_done": sum(r["md_done"] for r in rows),
    }
    if per_model:
        status["per_model"] = rows
    return status
