"""The demo's MD: one start, one model, ASE and LAMMPS under the same stability criteria, and the
table of what happened."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gnnff.calculators.md import MDSettings, run_md
from gnnff.calculators.pretrained import available_pretrained, pretrained_path
from gnnff.errors import UsageError
from gnnff.io_utils import read_frames
from gnnff.stability import StabilityConfig, StabilityReference

# the start where the bundled baseline fails quickly: the last frame of the quick a-SiO1.10
# reference MD (Si-rich, outside the SiO2 training set), heated to 1500 K
START_FILE = "reference_md/a-SiO1.10_1000K.extxyz"
START_INDEX = -1
CHECK_INTERVAL = 10  # MD steps between stability checks, in both engines


@dataclass
class Row:
    """One run of the final table: ``stable_ps`` the time of the first failed check (the run
    length if none), ``S`` = stable_ps / run length, ``ended_by`` the failed criterion or None."""

    model: str
    engine: str
    stable_ps: float
    S: float
    ended_by: str | None
    folder: Path

    @property
    def failed(self) -> bool:
        return self.ended_by is not None

    @classmethod
    def from_report(cls, model: str, engine: str, report: dict[str, Any], folder: Path) -> Row:
        return cls(
            model,
            engine,
            float(report["stable_time_ps"]),
            float(report["stability_index"]),
            report.get("failed_criterion") or None,
            folder,
        )

    def verdict(self) -> str:
        """``failed at 0.150 ps (close_contact)`` or ``ran the full 1 ps``."""
        if self.failed:
            return f"failed at {self.stable_ps:.3f} ps ({self.ended_by})"
        return f"ran the full {self.stable_ps:g} ps"


def bundled_model(name: str) -> Path:
    """Path of bundled model ``name``; UsageError if this install lacks it."""
    if name not in available_pretrained():
        raise UsageError(
            f"the demo needs the bundled model {name}, which this install lacks; reinstall gnnff "
            "from a full checkout (`make setup`)"
        )
    return pretrained_path(name)


def describe_model(name: str) -> str:
    """One line from the model file's metadata: ID force error and the recorded stability."""
    from gnnff.potentials import read_metadata

    bundle = read_metadata(bundled_model(name))["training"].get("bundle", {})
    mae = bundle.get("evaluation", {}).get("test_id", {}).get("force_mae")
    s = bundle.get("stability", {}).get("mean_stability_index")
    parts = [name]
    if mae is not None:
        parts.append(f"ID force MAE {mae:.0f} meV/A")
    if s is not None:
        parts.append(f"mean S {s:.2f} in its own bundle check")
    al = bundle.get("active_learning")
    if al:
        parts.append(
            f"{al['frames_added_total']} failure frames labelled by `gnnff stabilize` "
            "from sio2-allegro-baseline"
        )
    return ", ".join(parts)


class Bench:
    """The demo's start, stability reference and criteria, written once under ``out``."""

    def __init__(self, data: Path, out: Path, temperature: float, time_ps: float, seed: int):
        self.out, self.temperature, self.time_ps, self.seed = out, temperature, time_ps, seed
        self.start_path = data / START_FILE
        ref_md = read_frames(str(self.start_path), ":")
        self.start = ref_md[START_INDEX]
        self.start.calc = None
        self.config = StabilityConfig(interval=CHECK_INTERVAL, rdf_window_ps=0.25)
        reference = StabilityReference.from_frames(
            read_frames(str(data / "train.extxyz"), ":"),
            rdf_rmax=self.config.rdf_rmax,
            nbins=self.config.rdf_nbins,
            rdf_frames=ref_md,
        )
        self.reference = reference
        self.reference_path = out / "stability_reference.json"
        reference.save(self.reference_path)
        self.criteria_path = out / "criteria.yaml"
        self.criteria_path.write_text(
            "\n".join(f"{k}: {json.dumps(v)}" for k, v in self.config.to_dict().items()) + "\n"
        )

    def run_ase(self, label: str, model: Path) -> Row:
        from gnnff.calculators import GNNFFCalculator

        folder = self.out / "runs" / f"{label}_ase"
        settings = MDSettings(
            ensemble="nvt",
            temperature=self.temperature,
            time_ps=self.time_ps,
            seed=self.seed,
            check_interval=CHECK_INTERVAL,
        )
        report = run_md(
            self.start,
            GNNFFCalculator(model),
            settings,
            folder,
            stability_config=self.config,
            reference=self.reference,
            progress=False,
        )
        return Row.from_report(label, "ASE", report, folder)

    def run_lammps(self, label: str, model: Path, np_: int) -> Row:
        from gnnff.lammps.driver import run_lammps_input
        from gnnff.lammps.geometry import write_lammps_data
        from gnnff.potentials import read_metadata

        species = read_metadata(model)["species"]
        folder = self.out / "runs" / f"{label}_lammps"
        folder.mkdir(parents=True, exist_ok=True)
        write_lammps_data(self.start, folder / "start.data", species)
        template = Path(__file__).resolve().parents[1] / "lammps" / "templates" / "in.nvt"
        run_lammps_input(
            template,
            folder,
            np_=np_,
            stability=self.criteria_path,
            reference=self.reference_path,
            variables={
                "model": str(model),
                "data": str(folder / "start.data"),
                "types": " ".join(species),
                "temp": self.temperature,
                "steps": int(round(self.time_ps * 1000)),
                "seed": 1000 + self.seed,
            },
        )
        report = json.loads((folder / "report.json").read_text())
        return Row.from_report(label, f"LAMMPS x{np_}", report, folder)


def table_lines(rows: list[Row]) -> list[str]:
    """The final table: model x engine -> stable time, S, criterion that ended the run."""
    width = max(len("model"), *(len(r.model) for r in rows))
    lines = [f"{'model':{width}s}  {'engine':14s} {'stable (ps)':>11s} {'S':>5s}  ended by"]
    for r in rows:
        lines.append(
            f"{r.model:{width}s}  {r.engine:14s} {r.stable_ps:11.3f} {r.S:5.2f}  "
            f"{r.ended_by or '- (ran the full run)'}"
        )
    return lines
