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
from pathlib import Path
from typing import Any

from gnnff.io_utils import atomic_write_json

from .config import BOOTSTRAP_PREFIX, StabilizeConfigError
from .units import RoundUnits, StabilizeError


def _results_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The part of a config that decides the results of each round: all but
    ``explore.workers`` (how many runs go at once) and ``max_rounds`` (where the loop stops:
    rounds done stay valid), which a resumed loop may change."""
    out = json.loads(json.dumps(cfg))
    out.get("explore", {}).pop("workers", None)
    out.pop("max_rounds", None)
    return dict(out)


class StabilizeLoop(RoundUnits):
    """Run (or resume) the loop of ``cfg`` (validated, :mod:`gnnff.active.config`) in ``out``."""

    def __init__(
        self,
        cfg: dict[str, Any],
        out: str | Path,
        resume: bool = False,
        log=print,
    ) -> None:
        self.cfg, self.out, self.log = cfg, Path(out), log
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
        from gnnff.data.reference import ReferenceSpecError, validate_reference

        try:  # a reference lacking an element of the data fails now, not after a round
            validate_reference(self.cfg["reference"], species=list(species))
        except ReferenceSpecError as exc:
            raise StabilizeConfigError(str(exc)) from None
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
            from gnnff.data.reference import reference_label, reference_provenance

            by = reference_label(reference_provenance(self.cfg["reference"]))
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
        """Called after every finished (cached) unit of work; does nothing. The resume tests
        override it to stop a run between two units (tests/stabilize_fixtures.py)."""

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
