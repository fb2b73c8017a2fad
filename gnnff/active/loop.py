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

With a ``bootstrap`` section the loop starts from no data (:mod:`gnnff.active.bootstrap`): the
reference labels the preset's structures into ``round_000/bootstrap/``, which is the base set;
no stability reference then comes from the student's MD (the RDF criterion runs only for starts
from a bootstrap ``reference_md/`` trajectory, against that trajectory's RDF).

Every unit (training, one exploration run, selection, labelling, data merge) writes its result
atomically and is skipped when done, so ``--resume`` after an interruption at any point (Ctrl-C,
kill -9) loses at most the unit in flight. Layout of ``--out``::

    config.json  summary.json  stabilize.md  stabilize.png
    round_000/bootstrap/, label_cache/, bootstrap.json   (bootstrap: the labelled data set)
    round_000/train/model.pt            (unless initial_model is given)
    round_000/train_member_k/model.pt   (select.committee: members k = 1..K-1)
    round_001/explore/reference.json (reference_run_NN.json: bootstrap RDF references)
    round_001/explore/run_00/report.json, failing.extxyz, done.json
        committee.extxyz, committee.json   (select.committee)
    round_001/selected.extxyz  labelled.extxyz  label_log.json  train.extxyz  train/model.pt
              train_member_k/model.pt   (select.committee)
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from gnnff.errors import GNNFFError
from gnnff.io_utils import atomic_write, atomic_write_json

from .config import BOOTSTRAP_PREFIX, StabilizeConfigError


class StabilizeError(GNNFFError, RuntimeError):
    """The loop cannot go on; the message says why and what to change."""


class Interrupted(RuntimeError):
    """Raised by the ``stop_after_units`` test hook."""


def _write_frames(path: Path, frames) -> None:
    import ase.io

    atomic_write(path, lambda p: ase.io.write(str(p), frames, format="extxyz"))


def _results_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of a config that decides results: all but ``explore.workers`` (how many runs
    go at once), which a resumed loop may change."""
    out = json.loads(json.dumps(cfg))
    out.get("explore", {}).pop("workers", None)
    return dict(out)


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
            if _results_config(json.loads(stored.read_text())) != _results_config(cfg):
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
        from gnnff.training.data import read_frames, species_in

        from .labelling import Labeller

        bs = self.cfg["bootstrap"]
        if bs is not None:
            from .bootstrap import check_preset

            preset = check_preset(bs, self.cfg["reference"], self.cfg["explore"]["runs"])
            self.tcfg = self._train_config(placeholder=True)
            species = self.tcfg["model"].get("species") or list(preset["lammps"]["elements"])
        else:
            self._load_base()
            species = self.tcfg["model"].get("species") or species_in(self.base_frames)
        if self.cfg["initial_model"]:
            from gnnff.potentials import read_metadata

            species = list(read_metadata(self.cfg["initial_model"])["species"])
        for k, run in enumerate(self.cfg["explore"]["runs"]):
            if run["structure"].startswith(BOOTSTRAP_PREFIX):
                continue  # frames of the bootstrap preset: its species
            got = species_in(read_frames(f"{run['structure']}@{run['index']}"))
            lacking = sorted(set(got) - set(species))
            if lacking:
                raise StabilizeConfigError(
                    f"explore.runs[{k}] ({run['structure']}) holds {lacking}, which the model "
                    f"lacks (species {species}); drop the run or add training data with them"
                )
        self.labeller = Labeller(self.cfg["reference"])  # cache_dir set per round

    def _train_config(self, placeholder: bool = False) -> dict[str, Any]:
        """The validated training config. With a bootstrap its data section is the bootstrap
        data set's (labels as written in its extxyz files); ``placeholder``: those files do
        not exist yet, so every other field is checked with stand-in paths."""
        from gnnff.training.config import ConfigError, load_config

        path = self.cfg["train_config"]
        sets: list[str] = []
        if self.cfg["bootstrap"] is not None:
            from .bootstrap import data_overrides

            sets = data_overrides(self._rdir(0), path, placeholder)
        try:
            return load_config(path, sets)
        except ConfigError as exc:
            hint = ""
            if self.cfg["bootstrap"] is None and self.cfg["initial_model"] is None:
                hint = (
                    "; with no data yet, add a bootstrap section (bootstrap: {preset: NAME}) "
                    "and the reference labels a generated data set"
                )
            raise StabilizeConfigError(f"train_config {path}: {exc}{hint}") from None

    def _load_base(self) -> None:
        """The base training set and the close-contact reference it gives. With a bootstrap
        the base set is the reference-labelled bootstrap training split."""
        from gnnff.stability.reference import StabilityReference
        from gnnff.training.data import read_frames

        self.tcfg = self._train_config()
        self.base_frames = read_frames(self.tcfg["data"]["train"], "train")
        name = Path(self.tcfg["data"]["train"]).name
        source = f"base training set {name}"
        if self.cfg["bootstrap"] is not None:
            from gnnff.data.reference import reference_provenance

            ref = reference_provenance(self.cfg["reference"])
            by = ref.get("teacher") or ref.get("preset") or ref.get("calculator")
            source = f"bootstrap training set {name} (labelled by {by})"
        cutoff = float(self.tcfg["model"].get("cutoff", 5.0))
        self.reference = StabilityReference.from_frames(
            self.base_frames, with_rdf=False, distance_cutoff=cutoff, source=source
        )

    def _bootstrap(self) -> dict[str, Any]:
        """The bootstrap unit: round 0's data set, labelled by the reference."""
        from gnnff.data.generate import DataGenerationError
        from gnnff.data.labelling import LabellingError

        from .bootstrap import run_bootstrap

        rdir = self._rdir(0)
        fresh = not (rdir / "bootstrap.json").is_file()
        try:
            info, cpu = run_bootstrap(
                self.cfg["bootstrap"], self.cfg["reference"], rdir, log=self.log
            )
        except (DataGenerationError, LabellingError) as exc:
            raise StabilizeError(f"bootstrap: {exc}") from None
        if fresh:
            self._cpu(rdir, "bootstrap", cpu)
            self._unit_done()
        return info

    def _unit_done(self) -> None:
        if self._units_left is not None:
            self._units_left -= 1
            if self._units_left <= 0:
                raise Interrupted("stop_after_units reached (test hook)")

    # ------------------------------------------------------------------ units
    def _train(
        self,
        rdir: Path,
        train_file: Path | None,
        init_model: str | None,
        round_index: int,
        member: int = 0,
    ) -> str:
        """Train (or load the cached) model of ``rdir``: the main model (``member`` 0, in
        ``rdir/train``) or committee member k (``rdir/train_member_k``, seed + 1000 k). Round 0
        members with an initial model are fine-tuned from it on the base set (any mode)."""
        unit = "train" if member == 0 else f"train_member_{member}"
        model = rdir / unit / "model.pt"
        if model.is_file() and (rdir / unit / "summary.json").is_file():
            return str(model)
        import copy

        from gnnff.training.trainer import Trainer

        tcfg = copy.deepcopy(self.tcfg)
        tcfg["training"]["progress"] = False
        init_state = None
        if train_file is None:  # round 0 from scratch, train_config as given
            tcfg["training"]["seed"] = int(tcfg["training"]["seed"]) + 1000 * member
        else:
            tcfg["data"]["train"] = str(train_file)
            rt = self.cfg["retrain"]
            tcfg["training"]["epochs"] = rt["epochs"]
            tcfg["training"]["seed"] = self.cfg["seed"] + round_index + 1000 * member
            if rt["lr"] is not None:
                tcfg["optim"]["lr"] = rt["lr"]
            if (rt["mode"] == "finetune" or round_index == 0) and init_model:
                from gnnff.potentials import eager_from_file, read_metadata

                tcfg["model"] = dict(read_metadata(init_model)["hyperparameters"])
                init_state = eager_from_file(init_model).state_dict()
        resume = (rdir / unit / "checkpoint.pt").is_file()
        t0 = time.process_time()
        Trainer(tcfg, rdir / unit, resume=resume, log=lambda *a: None, init_state=init_state).fit()
        self._cpu(rdir, unit, time.process_time() - t0)
        self.log(f"  trained {model}")
        self._unit_done()
        return str(model)

    def _members(
        self, rdir: Path, train_file: Path | None, previous: list[str], round_index: int
    ) -> list[str]:
        """The K-1 committee members of ``rdir`` (none without ``select.committee``); member k
        fine-tunes ``previous[k - 1]`` (the previous round's member k, or the initial model)."""
        com = self.cfg["select"]["committee"]
        if com is None:
            return []
        if len(previous) == 1:  # round 0: every member starts from the initial model
            previous = previous * (com["size"] - 1)
        return [
            self._train(rdir, train_file, previous[k - 1] if previous else None, round_index, k)
            for k in range(1, com["size"])
        ]

    def _cpu(self, rdir: Path, unit: str, seconds: float) -> None:
        path = rdir / "cpu.json"
        cpu = json.loads(path.read_text()) if path.is_file() else {}
        cpu[unit] = cpu.get(unit, 0.0) + seconds
        atomic_write_json(path, cpu)

    def _explore(
        self, rdir: Path, model: str, members: list[str] | None = None
    ) -> list[dict[str, Any]]:
        """Every exploration run of the round not yet done (``explore.workers`` at once);
        returns the round's stability table, in run order. ``members``: the committee members
        evaluated alongside ``model`` (``select.committee``)."""
        from .exploration import explore_run, summary_row

        ex = self.cfg["explore"]
        (rdir / "explore").mkdir(parents=True, exist_ok=True)
        reference_file = rdir / "explore" / "reference.json"
        if not reference_file.is_file():
            self.reference.save(reference_file)
        pending = []
        for k, run in enumerate(ex["runs"]):
            rund = rdir / "explore" / f"run_{k:02d}"
            if not (rund / "done.json").is_file():
                if rund.exists():
                    shutil.rmtree(rund)  # an interrupted run starts over
                pending.append((k, *self._run_setup(rdir, k, run), rund))
        frames = self.cfg["select"]["failure_frames"]
        com = self.cfg["select"]["committee"]
        committee = None
        if com is not None:
            if not members or len(members) != com["size"] - 1:
                raise StabilizeError(f"select.committee needs {com['size'] - 1} member models")
            committee = {
                "members": list(members),
                **{k: com[k] for k in ("f_lo", "f_hi", "interval")},
            }

        def finish(k: int, run: dict[str, Any], rund: Path, result: tuple) -> None:
            report, cpu = result
            self._cpu(rdir, "explore", cpu)
            atomic_write_json(rund / "done.json", summary_row(k, run, report))
            self._unit_done()

        if ex["workers"] == 1 or len(pending) <= 1:
            for k, run, ref, criteria, rund in pending:
                result = explore_run(
                    ex, run, model, ref, str(rund), frames, None, committee, criteria
                )
                finish(k, run, rund, result)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            ctx = multiprocessing.get_context("spawn")  # torch and fork do not mix
            workers = min(ex["workers"], len(pending))
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                tail = (frames, 1, committee)  # failure frames, threads, committee
                futures = {
                    pool.submit(explore_run, ex, run, model, ref, str(rund), *tail, criteria): (
                        k,
                        run,
                        rund,
                    )
                    for k, run, ref, criteria, rund in pending
                }
                for fut in as_completed(futures):
                    finish(*futures[fut], fut.result())
        return [
            json.loads((rdir / "explore" / f"run_{k:02d}" / "done.json").read_text())
            for k in range(len(ex["runs"]))
        ]

    def _run_setup(
        self, rdir: Path, k: int, run: dict[str, Any]
    ) -> tuple[dict[str, Any], str, list[str] | None]:
        """Exploration run ``k`` with its start file resolved, its stability reference file and
        its criteria (None: the defaults). Without a bootstrap every run uses the round's
        ``reference.json``. With one, no reference may come from the student's own MD: a run
        starting from a bootstrap ``reference_md/`` trajectory is judged against that
        trajectory's RDF (``reference_run_NN.json``); any other run is not judged by RDF
        (its only reference would be the run's own first window)."""
        from .bootstrap import REFERENCE_MD, criteria_without_rdf, rdf_reference, resolve_structure

        text = run["structure"]
        run = {**run, "structure": resolve_structure(text, self._rdir(0))}
        shared = str(rdir / "explore" / "reference.json")
        if self.cfg["bootstrap"] is None:
            return run, shared, None
        if not text.startswith(BOOTSTRAP_PREFIX + REFERENCE_MD):
            return run, shared, criteria_without_rdf()
        path = rdir / "explore" / f"reference_run_{k:02d}.json"
        if not path.is_file():
            rdf_reference(self.reference, self.base_frames, text, run["structure"]).save(path)
        return run, str(path), None

    def _select_and_label(self, rdir: Path, rows: list[dict[str, Any]]) -> int:
        from gnnff.stability.failing import FAILING_FILE as FILE_NAME
        from gnnff.training.data import read_frames

        from .selection import select_committee_frames, select_frames

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
            com = sel["committee"]
            if com is not None:
                from .committee import COMMITTEE_FILE

                extra, more = select_committee_frames(
                    [rdir / "explore" / f"run_{r['run']:02d}" / COMMITTEE_FILE for r in rows],
                    frames,
                    com["max_frames"],
                    sel["min_rms_displacement"],
                    com["f_lo"],
                    com["f_hi"],
                )
                frames = frames + extra
                counts.update(more)
            if not frames:
                why = "; ".join(
                    f"run {r['run']}: {r['failed_criterion']} ({r['failed_pair']}, "
                    f"threshold {r['threshold']})"
                    for r in rows
                    if r["stability_index"] < 1.0
                )
                hint = ""
                if com is not None:
                    hint = (
                        f"; no committee frame had a max force deviation in [f_lo, f_hi) = "
                        f"[{com['f_lo']}, {com['f_hi']}) eV/A (select.committee)"
                    )
                raise StabilizeError(
                    f"round {rdir.name}: runs still fail ({why}) but no failure frame was "
                    f"selected{hint}; raise select.failure_frames or lower "
                    "select.min_rms_displacement"
                )
            _write_frames(selected, frames)
            atomic_write_json(rdir / "select.json", counts)
            self._unit_done()
        labelled = rdir / "labelled.extxyz"
        if not labelled.is_file():
            from .labelling import LabellingError

            t0 = time.process_time()
            # one file per labelled frame: an interrupted round loses at most the frame in flight
            self.labeller.cache_dir = rdir / "label_cache"
            try:
                res = self.labeller.label(read_frames(selected))
            except LabellingError as exc:
                raise StabilizeError(f"round {rdir.name}: {exc}") from None
            self._cpu(rdir, "label", time.process_time() - t0)
            atomic_write_json(
                rdir / "label_log.json",
                {"labelled": len(res.frames), "skipped": res.skipped, "from_cache": res.from_cache},
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
        from .committee import read_counts
        from .report import write_report

        boot = self._bootstrap() if self.cfg["bootstrap"] is not None else None
        if boot is not None:
            self._load_base()
        init = self.cfg["initial_model"]
        model = init or self._train(self._rdir(0), None, None, 0)
        base_train = Path(self.tcfg["data"]["train"]) if init else None
        members = self._members(self._rdir(0), base_train, [init] if init else [], 0)
        rounds: list[dict[str, Any]] = []
        status = "max_rounds"
        for r in range(1, self.cfg["max_rounds"] + 2):
            rdir = self._rdir(r)
            self.log(f"round {r}: exploring with {model}")
            rows = self._explore(rdir, model, members)
            info: dict[str, Any] = {"round": r, "model": model, "runs": rows, "frames_added": 0}
            if members:
                info["members"] = members
                runs_dirs = [rdir / "explore" / f"run_{k:02d}" for k in range(len(rows))]
                info["committee"] = read_counts(runs_dirs)
            rounds.append(info)
            if all(row["stability_index"] >= 1.0 for row in rows):
                status = "converged"
                break
            if r == self.cfg["max_rounds"] + 1:
                break
            info["frames_added"] = self._select_and_label(rdir, rows)
            merged = self._merge(r)
            new_model = self._train(rdir, merged, model, r)
            members = self._members(rdir, merged, members, r)
            model = new_model
        for info in rounds:
            cpu = self._rdir(info["round"]) / "cpu.json"
            info["cpu_s"] = json.loads(cpu.read_text()) if cpu.is_file() else {}
            sel = self._rdir(info["round"]) / "select.json"
            if info.get("committee") and sel.is_file():
                info["committee_selected"] = json.loads(sel.read_text()).get(
                    "committee_selected", 0
                )
        cpu0 = self._rdir(0) / "cpu.json"
        summary = {
            "status": status,
            "final_model": model,
            "rounds": rounds,
            "initial_training_cpu_s": (
                sum(json.loads(cpu0.read_text()).values()) if cpu0.is_file() else 0.0
            ),
            "frames_added_total": sum(i["frames_added"] for i in rounds),
            "reference": self.reference.source,
            "committee": self.cfg["select"]["committee"],
            "bootstrap": boot,
        }
        atomic_write_json(self.out / "summary.json", summary)
        write_report(summary, self.out)
        return summary
