"""The stability-driven active-learning loop (``gnnff stabilize``).

Round r explores with the model of round r-1 (MD with the stability monitor from every start of
``explore.runs``); if every run reaches S = 1 the loop has converged. Otherwise it selects failure
frames (:mod:`gnnff.active.selection`), labels them with the reference
(:mod:`gnnff.active.labelling`), appends them to the training set and retrains (fine-tunes the
previous model, or trains from scratch) into the model of round r. After ``max_rounds``
retrainings a last exploration measures the final model.

Close contacts are always judged against the *base* training set's per-pair minimum distances:
the frames the loop adds hold the short contacts that made runs fail, and judging later rounds by
their own (shorter) minima would let the metric, not the model, improve.

Every unit (training, one exploration run, selection, labelling, data merge) writes its result
atomically and is skipped when done, so ``--resume`` after an interruption at any point (Ctrl-C,
kill -9) loses at most the unit in flight. Layout of ``--out``::

    config.json  summary.json  stabilize.md  stabilize.png
    round_000/train/model.pt            (unless initial_model is given)
    round_001/explore/run_00/report.json, failing.extxyz, done.json
    round_001/selected.extxyz  labelled.extxyz  label_log.json  train.extxyz  train/model.pt
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from gnnff.io_utils import atomic_write, atomic_write_json

from .config import StabilizeConfigError


class StabilizeError(RuntimeError):
    """The loop cannot go on; the message says why and what to change."""


class Interrupted(RuntimeError):
    """Raised by the ``stop_after_units`` test hook."""


def _write_frames(path: Path, frames) -> None:
    import ase.io

    atomic_write(path, lambda p: ase.io.write(str(p), frames, format="extxyz"))


class StabilizeLoop:
    """Run (or resume) the loop of ``cfg`` (validated, :mod:`gnnff.active.config`) in ``out``."""

    def __init__(
        self,
        cfg: dict[str, Any],
        out: str | Path,
        resume: bool = False,
        log=print,
        stop_after_units: int | None = None,
    ) -> None:
        self.cfg, self.out, self.log = cfg, Path(out), log
        self._units_left = stop_after_units
        stored = self.out / "config.json"
        if stored.exists():
            if not resume:
                raise StabilizeConfigError(
                    f"{self.out} already holds a stabilize run; pass "
                    "--resume to continue it or choose another --out"
                )
            if json.loads(stored.read_text()) != json.loads(json.dumps(cfg)):
                raise StabilizeConfigError(
                    f"cannot resume {self.out}: the config differs from "
                    "the one it was started with; use a new --out"
                )
        elif resume:
            raise StabilizeConfigError(f"--resume: {self.out} holds no stabilize run")
        self._prepare()
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(stored, cfg)

    # ------------------------------------------------------------------ set-up
    def _prepare(self) -> None:
        """Everything that can fail on bad input, before anything is written."""
        from gnnff.stability.reference import StabilityReference
        from gnnff.training.config import load_config
        from gnnff.training.data import read_frames, species_in

        from .labelling import Labeller

        self.tcfg = load_config(self.cfg["train_config"])
        self.base_frames = read_frames(self.tcfg["data"]["train"], "train")
        species = self.tcfg["model"].get("species") or species_in(self.base_frames)
        if self.cfg["initial_model"]:
            from gnnff.potentials import read_metadata

            species = list(read_metadata(self.cfg["initial_model"])["species"])
        for k, run in enumerate(self.cfg["explore"]["runs"]):
            got = species_in(read_frames(f"{run['structure']}@{run['index']}"))
            lacking = sorted(set(got) - set(species))
            if lacking:
                raise StabilizeConfigError(
                    f"explore.runs[{k}] ({run['structure']}) holds {lacking}, which the model "
                    f"lacks (species {species}); drop the run or add training data with them"
                )
        self.labeller = Labeller(self.cfg["reference"])
        cutoff = float(self.tcfg["model"].get("cutoff", 5.0))
        self.reference = StabilityReference.from_frames(
            self.base_frames,
            with_rdf=False,
            distance_cutoff=cutoff,
            source=f"base training set {Path(self.tcfg['data']['train']).name}",
        )

    def _unit_done(self) -> None:
        if self._units_left is not None:
            self._units_left -= 1
            if self._units_left <= 0:
                raise Interrupted("stop_after_units reached (test hook)")

    # ------------------------------------------------------------------ units
    def _train(
        self, rdir: Path, train_file: Path | None, init_model: str | None, round_index: int
    ) -> str:
        model = rdir / "train" / "model.pt"
        if model.is_file() and (rdir / "train" / "summary.json").is_file():
            return str(model)
        import copy

        from gnnff.training.trainer import Trainer

        tcfg = copy.deepcopy(self.tcfg)
        tcfg["training"]["progress"] = False
        init_state = None
        if train_file is not None:
            tcfg["data"]["train"] = str(train_file)
            rt = self.cfg["retrain"]
            tcfg["training"]["epochs"] = rt["epochs"]
            tcfg["training"]["seed"] = self.cfg["seed"] + round_index
            if rt["lr"] is not None:
                tcfg["optim"]["lr"] = rt["lr"]
            if rt["mode"] == "finetune" and init_model:
                from gnnff.potentials import eager_from_file, read_metadata

                tcfg["model"] = dict(read_metadata(init_model)["hyperparameters"])
                init_state = eager_from_file(init_model).state_dict()
        resume = (rdir / "train" / "checkpoint.pt").is_file()
        t0 = time.process_time()
        Trainer(
            tcfg, rdir / "train", resume=resume, log=lambda *a: None, init_state=init_state
        ).fit()
        self._cpu(rdir, "train", time.process_time() - t0)
        self.log(f"  trained {model}")
        self._unit_done()
        return str(model)

    def _cpu(self, rdir: Path, unit: str, seconds: float) -> None:
        path = rdir / "cpu.json"
        cpu = json.loads(path.read_text()) if path.is_file() else {}
        cpu[unit] = cpu.get(unit, 0.0) + seconds
        atomic_write_json(path, cpu)

    def _explore(self, rdir: Path, model: str) -> list[dict[str, Any]]:
        from gnnff.calculators import GNNFFCalculator
        from gnnff.calculators.md import MDSettings, read_structure, run_md

        ex = self.cfg["explore"]
        rows = []
        for k, run in enumerate(ex["runs"]):
            rund = rdir / "explore" / f"run_{k:02d}"
            done = rund / "done.json"
            if not done.is_file():
                if rund.exists():
                    shutil.rmtree(rund)  # an interrupted run starts over
                settings = MDSettings(
                    ensemble=ex["ensemble"],
                    temperature=run["temperature"],
                    time_ps=ex["time_ps"],
                    dt_fs=ex["dt_fs"],
                    thermostat=ex["thermostat"],
                    seed=run["seed"],
                    traj_interval=10**9,
                    check_interval=ex["check_interval"],
                    failure_frames=self.cfg["select"]["failure_frames"],
                )
                t0 = time.perf_counter() if ex["engine"] == "lammps" else time.process_time()
                start = read_structure(run["structure"], run["index"])
                if ex["engine"] == "lammps":
                    report = self._explore_lammps(start, model, run, rund)
                    self._cpu(rdir, "explore", ex["np"] * (time.perf_counter() - t0))
                else:
                    report = run_md(
                        start,
                        GNNFFCalculator(model),
                        settings,
                        rund,
                        reference=self.reference,
                        progress=False,
                    )
                    self._cpu(rdir, "explore", time.process_time() - t0)
                row = {
                    "run": k,
                    "structure": Path(run["structure"]).name,
                    "temperature": run["temperature"],
                    "stability_index": report["stability_index"],
                    "stable_time_ps": report["stable_time_ps"],
                    "failed_criterion": report.get("failed_criterion"),
                    "failed_pair": (report.get("failure") or {}).get("pair"),
                    "threshold": (report.get("failure") or {}).get("threshold"),
                }
                atomic_write_json(done, row)
                self._unit_done()
            rows.append(json.loads(done.read_text()))
        return rows

    def _explore_lammps(self, start, model: str, run: dict[str, Any], rund: Path) -> dict:
        """One exploration run through LAMMPS (``gnnff/plugin/templates/in.nvt`` on
        ``explore.np`` ranks, monitored by ``fix gnnff/stability``); returns its report. The
        CPU time recorded is wall time x ranks (the ranks are other processes)."""
        from gnnff.lammps_geometry import write_lammps_data
        from gnnff.plugin.driver import run_lammps_input
        from gnnff.potentials import read_metadata

        ex = self.cfg["explore"]
        rund.mkdir(parents=True, exist_ok=True)
        species = list(read_metadata(model)["species"])
        write_lammps_data(start, rund / "start.data", species)
        self.reference.save(rund / "reference.json")
        (rund / "criteria.yaml").write_text(f"interval: {ex['check_interval']}\n")
        template = Path(__file__).resolve().parents[1] / "plugin" / "templates" / "in.nvt"
        run_lammps_input(
            template, rund, np_=ex["np"], stability=rund / "criteria.yaml",
            reference=rund / "reference.json",
            variables={"model": str(model), "data": str(rund / "start.data"),
                       "types": " ".join(species), "temp": str(run["temperature"]),
                       "steps": str(int(round(ex["time_ps"] * 1000.0))),
                       "seed": str(1000 + run["seed"])},
        )  # fmt: skip
        return dict(json.loads((rund / "report.json").read_text()))

    def _select_and_label(self, rdir: Path, rows: list[dict[str, Any]]) -> int:
        from gnnff.stability.failing import FAILING_FILE as FILE_NAME
        from gnnff.training.data import read_frames

        from .selection import select_frames

        sel = self.cfg["select"]
        selected = rdir / "selected.extxyz"
        if not selected.is_file():
            files = [
                rdir / "explore" / f"run_{r['run']:02d}" / FILE_NAME
                for r in rows
                if r["stability_index"] < 1.0
            ]
            files = [f for f in files if f.is_file()]
            frames, counts = select_frames(
                files, sel["max_frames_per_round"], sel["min_rms_displacement"]
            )
            if not frames:
                why = "; ".join(
                    f"run {r['run']}: {r['failed_criterion']} ({r['failed_pair']}, "
                    f"threshold {r['threshold']})"
                    for r in rows
                    if r["stability_index"] < 1.0
                )
                raise StabilizeError(
                    f"round {rdir.name}: runs still fail ({why}) but no failure frame was "
                    "selected; raise select.failure_frames or lower "
                    "select.min_rms_displacement"
                )
            _write_frames(selected, frames)
            atomic_write_json(rdir / "select.json", counts)
            self._unit_done()
        labelled = rdir / "labelled.extxyz"
        if not labelled.is_file():
            t0 = time.process_time()
            res = self.labeller.label(read_frames(selected))
            self._cpu(rdir, "label", time.process_time() - t0)
            atomic_write_json(
                rdir / "label_log.json", {"labelled": len(res.frames), "skipped": res.skipped}
            )
            if not res.frames:
                reasons = sorted({s["reason"] for s in res.skipped})
                raise StabilizeError(
                    f"round {rdir.name}: the reference labelled none of the "
                    f"{len(res.skipped)} selected frames ({'; '.join(reasons)})"
                )
            _write_frames(labelled, res.frames)
            self._unit_done()
        return len(read_frames(labelled))

    def _merge(self, round_index: int) -> Path:
        from gnnff.training.data import read_frames

        from .labelling import with_label_keys

        rdir = self._rdir(round_index)
        merged = rdir / "train.extxyz"
        if not merged.is_file():
            frames = list(self.base_frames)
            for r in range(1, round_index + 1):
                new = read_frames(self._rdir(r) / "labelled.extxyz")
                frames += with_label_keys(new, self.tcfg["data"])
            _write_frames(merged, frames)
            self._unit_done()
        return merged

    def _rdir(self, r: int) -> Path:
        return self.out / f"round_{r:03d}"

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, Any]:
        """Run to convergence or ``max_rounds``; returns (and writes) the summary."""
        from .report import write_report

        model = self.cfg["initial_model"] or self._train(self._rdir(0), None, None, 0)
        rounds: list[dict[str, Any]] = []
        status = "max_rounds"
        for r in range(1, self.cfg["max_rounds"] + 2):
            rdir = self._rdir(r)
            self.log(f"round {r}: exploring with {model}")
            rows = self._explore(rdir, model)
            info: dict[str, Any] = {"round": r, "model": model, "runs": rows, "frames_added": 0}
            rounds.append(info)
            if all(row["stability_index"] >= 1.0 for row in rows):
                status = "converged"
                break
            if r == self.cfg["max_rounds"] + 1:
                break
            info["frames_added"] = self._select_and_label(rdir, rows)
            model = self._train(rdir, self._merge(r), model, r)
        for info in rounds:
            cpu = self._rdir(info["round"]) / "cpu.json"
            info["cpu_s"] = json.loads(cpu.read_text()) if cpu.is_file() else {}
        cpu0 = self._rdir(0) / "cpu.json"
        summary = {
            "status": status,
            "final_model": model,
            "rounds": rounds,
            "initial_training_cpu_s": (
                json.loads(cpu0.read_text()).get("train", 0.0) if cpu0.is_file() else 0.0
            ),
            "frames_added_total": sum(i["frames_added"] for i in rounds),
            "reference": self.reference.source,
        }
        atomic_write_json(self.out / "summary.json", summary)
        write_report(summary, self.out)
        return summary
