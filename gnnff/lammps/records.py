"""What ``fix gnnff/stability`` wrote, turned into gnnff's stability report.

The fix (gnnff/lammps/fix_gnnff_stability.cpp) appends JSON lines to ``stability.jsonl``:
``start`` (each run's setup: step, time_ps, dt_ps, laststep, ensemble, thermostat_target,
model, species_by_type, and the criteria the fix judges with their settings),
``thresholds`` (close-contact thresholds, once), ``check`` (one per check: step, time_ps,
temperature, pe, ke, fmax, nonfinite, min_distance per pair, values (each judged criterion's
measured value), ok, failed [...], frame, thermostat_target (the thermostat's target at this
check, K, or null), setup (the check of a run's setup), t_max and target_temperature (the
bound the fix used)) and ``end`` (each run's end: step, laststep, halted). The temperature
check follows the run: each check is judged against its own thermostat target, an NVE run
against its own initial temperature (the rule of
:class:`gnnff.stability.criteria.Temperature`). With ``frames`` it also writes each check's
positions (``frames.bin``, format in gnnff_frames.cpp).

The fix is the one judge of its criteria: :func:`replay` feeds the checks, in order, to the
:class:`StabilityTracker` that ``gnnff md`` uses, whose criteria read the fix's verdict
(:mod:`gnnff.lammps.fix_verdict`); only the ``rdf`` criterion, which the fix does not judge,
is evaluated here, on the recorded frames. Report, S and the verdict line are then built the
same way for both engines.

t_run: each run counts what LAMMPS actually ran (its ``end`` step minus its ``start`` step),
except runs during or after the first failed check, which count what they asked for
(``laststep`` - start): ``gnnff md`` also divides by the planned length when it stops at a
failure. A run that ended early without a failed check (``fix halt``, a timeout) makes the
status "halted". Atoms added by the script (``fix deposit``, ``create_atoms``) are taken in;
fewer atoms than before (``thermo_modify lost ignore``) is the failure "lost_atoms".
"""

from __future__ import annotations

import json
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gnnff.errors import UsageError

RECORD_FILE = "stability.jsonl"
FRAMES_FILE = "frames.bin"
FRAME_MAGIC = b"GNNFFFR1"


def read_records(path: str | os.PathLike) -> list[dict]:
    """The JSON lines of a record file; a truncated last line (a crash mid-write) is dropped.
    Raises FileNotFoundError if the file is missing."""
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


@dataclass
class Frame:
    """One binary frame: atoms in ascending LAMMPS ID order, positions relative to boxlo (A)."""

    step: int
    time_ps: float
    cell: np.ndarray  # [3,3] rows a, b, c
    pbc: np.ndarray  # [3] bool
    temperature: float
    types: np.ndarray  # [n] int
    positions: np.ndarray  # [n,3]


def read_frames(path: str | os.PathLike) -> Iterator[Frame]:
    """Frames of a ``frames.bin`` file in write order. Raises ValueError on a corrupt file."""
    with open(path, "rb") as fh:
        while True:
            magic = fh.read(8)
            if not magic:
                return
            if magic != FRAME_MAGIC:
                raise UsageError(f"{path}: not a gnnff frames file (bad frame marker {magic!r})")
            head = np.frombuffer(fh.read(16 * 8), dtype=np.float64)
            n = int(head[2])
            types = np.frombuffer(fh.read(4 * n), dtype=np.int32)
            pos = np.frombuffer(fh.read(24 * n), dtype=np.float64)
            if len(head) != 16 or len(types) != n or len(pos) != 3 * n:
                return  # truncated last frame
            yield Frame(step=int(head[0]), time_ps=float(head[1]),
                        cell=head[3:12].reshape(3, 3).copy(), pbc=head[12:15] > 0.5,
                        temperature=float(head[15]), types=types.copy(),
                        positions=pos.reshape(n, 3).copy())  # fmt: skip


def fix_arguments(
    config,
    reference,
    out_dir: str | os.PathLike,
    *,
    ensemble: str | None = None,
    temperature: float | None = None,
    label: str = "gnnff lammps run",
) -> str:
    """Arguments of the ``fix gnnff/stability`` that ``gnnff lammps run`` adds, from a
    :class:`StabilityConfig` and the reference: a :class:`StabilityReference` (its pair
    distances become ``refmin``), ``"model"`` (the model's own) or ``"none"``."""
    from gnnff.stability.reference import StabilityReference

    out = Path(out_dir)
    crit = set(config.criteria)
    args = [str(config.interval), "file", str(out / RECORD_FILE), "frames", str(out / FRAMES_FILE),
            "failing", str(out / "failing.extxyz"), "append", "yes",
            "finite", "yes" if "finite" in crit else "no",
            "temperature", "yes" if "temperature" in crit else "no",
            "contact", "yes" if "close_contact" in crit else "no",
            "factor", repr(float(config.contact_factor)), "fallback", config.contact_fallback,
            "tfactor", repr(float(config.t_max_factor)),
            "drift", repr(float(config.energy_drift_per_atom))
            if "energy_conservation" in crit else "no",
            "stop", "soft" if config.stop_on_failure else "no"]  # fmt: skip
    if config.t_max is not None:
        args += ["tmax", repr(float(config.t_max))]
    if config.t_min is not None:
        args += ["tmin", repr(float(config.t_min))]
    if temperature is not None:
        args += ["target", repr(float(temperature))]
    if ensemble is not None:
        args += ["ensemble", ensemble]
    if isinstance(reference, StabilityReference):
        args += ["reference", "none"]
        for key, d in sorted(reference.pair_min_distances.items()):
            args += ["refmin", key, repr(float(d))]
    else:
        args += ["reference", "none" if str(reference) == "none" else "model"]
    args += ["label", label.replace(" ", "_").replace('"', "")]
    if any(" " in a or '"' in a for a in args):
        raise UsageError(
            f"paths given to fix gnnff/stability must not contain spaces or quotes: {out}"
        )
    return " ".join(args)


def run_time(records: list[dict]) -> tuple[float, dict | None]:
    """t_run (ps, see the module docstring) and the first early end without a failure
    ({step, time_ps}) or None. Each ``end`` record carries its run's first step, last step
    and dt (a `run ... pre no` has no ``start`` record)."""
    t_run = 0.0
    halted = None
    failed = False
    open_start = None  # a start record after the last end
    last_check = None
    for r in records:
        ev = r.get("event")
        if ev == "start":
            open_start = r
        elif ev == "check":
            failed = failed or not r.get("ok", True)
            last_check = r
        elif ev == "end":
            first, dt = int(r["start"]), float(r["dt_ps"])
            if failed:
                t_run += (int(r["laststep"]) - first) * dt
            else:
                t_run += (int(r["step"]) - first) * dt
                if r.get("halted") and halted is None:
                    halted = {"step": int(r["step"]), "time_ps": float(r["time_ps"])}
            open_start, last_check = None, None
    if open_start is not None:  # the last run never ended (a LAMMPS error): what it asked for
        t_run += (int(open_start["laststep"]) - int(open_start["step"])) * float(
            open_start["dt_ps"]
        )
    elif last_check is not None:  # a `pre no` run that never ended: up to its last check
        ends = [r for r in records if r.get("event") == "end"]
        t_run += float(last_check["time_ps"]) - (float(ends[-1]["time_ps"]) if ends else 0.0)
    return t_run, halted


def _numbers(species_by_type: list[str]) -> np.ndarray:
    from ase.data import atomic_numbers

    return np.array([0] + [atomic_numbers.get(s, 0) if s != "X" else 0 for s in species_by_type])


def replay(
    records: list[dict],
    frames_path: str | os.PathLike | None,
    config,
    reference,
    *,
    ensemble: str | None = None,
    temperature: float | None = None,
    failing_path: str | os.PathLike | None = None,
    keep: int = 5,
):
    """Build the run's :class:`StabilityTracker` from the records (and frames); returns it
    (None when the records hold no check). The natively checked criteria carry the fix's
    verdict (``config`` must enable no criterion the fix did not judge: UsageError); ``rdf``
    is judged here on the frames, and a failure found only here gets its ``failing_path``
    frames written by Python. ``reference``: a :class:`StabilityReference`, ``"model"`` (read
    from the model file the records name) or ``"none"``: it is reported and used by ``rdf``.
    A criterion a LAMMPS run cannot judge raises StabilityConfigError."""
    from gnnff.lammps.fix_verdict import FixRecords, check_lammps_criteria, fix_verdict_factory
    from gnnff.stability.failing import write_failing_frames
    from gnnff.stability.reference import StabilityReference
    from gnnff.stability.tracker import StabilityTracker

    check_lammps_criteria(config)
    starts = [r for r in records if r.get("event") == "start"]
    checks = [r for r in records if r.get("event") == "check"]
    if not starts or not checks:
        return None
    first = starts[0]
    if not isinstance(reference, StabilityReference):
        reference = None if str(reference) == "none" else _model_reference(first.get("model"))
    ens = ensemble or first.get("ensemble") or "nve"
    t_run, halted = run_time(records)
    fix = FixRecords(start=first)
    # a given --temperature is a fixed target; else each check's live thermostat target, whose
    # first value and the one farthest from it tell a ramp or a new stage (fix nvt temp 300 3000)
    targets = [c["thermostat_target"] for c in checks if c.get("thermostat_target") is not None]
    far = max(targets, key=lambda t: abs(t - targets[0])) if targets else None
    ramp = (targets[0], far) if temperature is None and far is not None else None
    tracker = StabilityTracker(config, reference, ens, temperature, total_time_ps=t_run,
                               criterion_factory=fix_verdict_factory(fix),
                               target_ramp=ramp)  # fmt: skip
    numbers = _numbers(first["species_by_type"])
    t0 = float(first["time_ps"])
    frames = read_frames(frames_path) if frames_path and Path(frames_path).is_file() else None
    recent: deque = deque(maxlen=keep + 1)
    native_step = next((c["step"] for c in checks if not c.get("ok", True)), None)
    for rec in records:
        event = rec.get("event")
        if event == "thresholds":
            fix.thresholds = rec
        if event != "check":
            continue
        fix.check = rec
        frame = next(frames, None) if (frames is not None and rec.get("frame")) else None
        if frame is not None and frame.step != rec["step"]:
            raise UsageError(
                f"frames file out of step with the records ({frame.step} vs "
                f"{rec['step']}); rerun with a fresh --out folder"
            )
        snap = _snapshot(rec, frame, numbers, t0)
        was_failed = tracker.failed
        if tracker.n_atoms is not None and snap.n_atoms != tracker.n_atoms:
            if snap.n_atoms < tracker.n_atoms:  # e.g. `thermo_modify lost ignore`
                tracker.record_failure(
                    "lost_atoms",
                    snap.step,
                    snap.time_ps,
                    value=snap.n_atoms,
                    threshold=tracker.n_atoms,
                )
                break
            tracker.n_atoms = snap.n_atoms  # atoms added by the script (fix deposit, ...)
        tracker.update(snap, target_temperature=rec.get("thermostat_target"),
                       run_start=bool(rec.get("setup")))  # fmt: skip
        if not rec.get("ok", True) and tracker.first_failure is None:
            # a native check the config does not name (e.g. the fix's `fmax`): its verdict
            f = rec["failed"][0]
            tracker.record_failure(f["criterion"], int(rec["step"]), snap.time_ps,
                                   f.get("value"), f.get("threshold"),
                                   **({"pair": f["pair"]} if f.get("pair") else {}),
                                   source="fix gnnff/stability")  # fmt: skip
        recent.append(snap)
        if tracker.failed and not was_failed:
            # the fix wrote failing frames for its own first failure; a failure only Python
            # judges (the RDF) gets them written here
            if failing_path and snap.step != native_step and snap.positions is not None:
                write_failing_frames(
                    failing_path,
                    list(recent),
                    tracker.first_failure,
                    source=str(first.get("label", "lammps")),
                )
            if config.stop_on_failure:
                break
    if halted is not None and not tracker.failed:
        tracker.mark_halted(
            halted["step"],
            halted["time_ps"] - t0,
            "the LAMMPS run ended before its last step (fix halt, a timeout or similar)",
        )
    return tracker


def _model_reference(model_file: str | None):
    from gnnff.stability.reference import StabilityReference

    if not model_file:
        return None
    try:
        from gnnff.potentials import read_metadata

        return StabilityReference.from_model_metadata(read_metadata(model_file))
    except Exception:  # noqa: BLE001 - no stored reference: the criterion's fallback applies
        return None


def _snapshot(rec: dict, frame: Frame | None, numbers_by_type: np.ndarray, t0: float):
    from gnnff.stability.snapshot import Snapshot

    mins = [d for d in (rec.get("min_distance") or {}).values() if d is not None]
    common = dict(step=int(rec["step"]), time_ps=float(rec["time_ps"]) - t0,
                  potential_energy=rec.get("pe"), kinetic_energy=rec.get("ke"),
                  temperature=rec.get("temperature"), forces=None,
                  min_distance=min(mins) if mins else None, max_force=rec.get("fmax"),
                  n_nonfinite=int(rec.get("nonfinite") or 0))  # fmt: skip
    if frame is None:
        raise UsageError(
            f"the check at step {rec['step']} has no frame: replaying needs the "
            "fix's `frames` file (gnnff lammps run asks for it)"
        )
    z = numbers_by_type[frame.types]
    mask = z > 0  # atoms of NULL types (another sub-style's) are not the model's to judge
    return Snapshot(
        numbers=z[mask], positions=frame.positions[mask], cell=frame.cell, pbc=frame.pbc, **common
    )
