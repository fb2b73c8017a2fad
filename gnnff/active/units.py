"""The units of one round of the stabilize loop (:mod:`gnnff.active.loop`): training the
model and its committee members, the exploration runs, selection and labelling of failure
frames, and merging them into the next training set. Each unit writes its result atomically
and is skipped when done, which is what makes ``--resume`` lose at most the unit in flight.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from gnnff.errors import GNNFFError
from gnnff.io_utils import atomic_write, atomic_write_json

from .config import BOOTSTRAP_PREFIX


class StabilizeError(GNNFFError, RuntimeError):
    """The loop cannot go on; the message says why and what to change."""


def _write_frames(path: Path, frames) -> None:
    import ase.io

    atomic_write(path, lambda p: ase.io.write(str(p), frames, format="extxyz"))


class RoundUnits:
    """The per-round units of :class:`gnnff.active.loop.StabilizeLoop` (a mix-in: the loop
    provides ``cfg``, ``out``, ``tcfg``, ``labeller``, ``reference``, ``log`` and
    ``_unit_done``)."""

    cfg: dict[str, Any]
    out: Path

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
                from gnnff.training.setup import fine_tune_start

                init_state = fine_tune_start(tcfg, init_model)
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
            # what labelled the merged set, for the model trained on it (training_summary.labels)
            atomic_write_json(rdir / "manifest.json", {"labels": self._merged_labels()})
            _write_frames(merged, frames)
            self._unit_done()
        return merged

    def _merged_labels(self) -> dict[str, Any]:
        """The loop's reference (it labelled every added frame) and the base set's labels."""
        from gnnff.data.reference import reference_provenance
        from gnnff.training.final import label_provenance

        base = label_provenance(self.tcfg["data"]["train"])
        return {**reference_provenance(self.cfg["reference"]), "base_labels": base or "unknown"}

    def _rdir(self, r: int) -> Path:
        return self.out / f"round_{r:03d}"

    # ------------------------------------------------------------------ the loop
