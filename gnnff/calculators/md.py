"""ASE molecular dynamics with a gnnff model and the stability monitor (``gnnff md``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units

from gnnff.errors import GNNFFError

THERMOSTATS = ("langevin", "bussi", "nose-hoover")
RAMP_THERMOSTATS = ("langevin", "bussi")
# MLIP Arena's heating-ramp stability test: NVT, 300 K -> 3000 K linearly over 10 ps
HEATING_RAMP = {"temperature": 300.0, "temperature_end": 3000.0, "time_ps": 10.0}


class MDConfigError(GNNFFError, ValueError):
    """MD settings or a start structure that cannot be used; the message names the fix."""


@dataclass
class MDSettings:
    """One MD run. Times in ps/fs, temperature in K, thermostat time constant in fs.

    ``temperature_end`` (NVT, Langevin or Bussi): the thermostat's target goes linearly from
    ``temperature`` at step 0 to ``temperature_end`` at the last step; the stability check's
    temperature bound follows it (t_max_factor x the target at each check)."""

    ensemble: str = "nvt"  # nve | nvt
    temperature: float = 300.0
    temperature_end: float | None = None
    time_ps: float = 1.0
    dt_fs: float = 1.0
    thermostat: str = "langevin"
    tau_fs: float = 100.0
    seed: int = 0
    traj_interval: int = 10
    check_interval: int = 10
    failure_frames: int = 5  # snapshots before the first failed check kept in failing.extxyz

    def validate(self) -> None:
        if self.ensemble not in ("nve", "nvt"):
            raise MDConfigError(f"ensemble must be nve or nvt, not {self.ensemble!r}")
        if self.thermostat not in THERMOSTATS:
            raise MDConfigError(f"thermostat must be one of {THERMOSTATS}, not {self.thermostat!r}")
        for name in ("time_ps", "dt_fs", "tau_fs"):
            if getattr(self, name) <= 0:
                raise MDConfigError(f"{name} must be positive")
        if self.temperature < 0:
            raise MDConfigError("temperature must be >= 0 K")
        if self.ensemble == "nvt" and self.temperature <= 0:
            raise MDConfigError(
                f"an NVT thermostat needs a temperature > 0 K, got {self.temperature}; "
                "for a run from rest use the nve ensemble with temperature 0"
            )
        if self.temperature_end is not None:
            if self.ensemble != "nvt" or self.thermostat not in RAMP_THERMOSTATS:
                raise MDConfigError(
                    "a temperature ramp needs --ensemble nvt with the langevin or bussi "
                    f"thermostat (got {self.ensemble}, {self.thermostat})"
                )
            if not self.temperature_end > 0:
                raise MDConfigError(
                    f"the ramp's end temperature must be > 0 K, got {self.temperature_end}"
                )
        if self.steps < 1:
            raise MDConfigError(
                f"time_ps {self.time_ps} is shorter than one {self.dt_fs} fs step; "
                "give a longer time or a smaller dt_fs"
            )
        if (
            isinstance(self.failure_frames, bool)
            or not isinstance(self.failure_frames, int)
            or self.failure_frames < 0
        ):
            raise MDConfigError(
                f"failure_frames must be an integer >= 0, got {self.failure_frames!r}"
            )
        for name in ("traj_interval", "check_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise MDConfigError(f"{name} must be a positive number of steps, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise MDConfigError(f"seed must be a non-negative integer, got {self.seed!r}")

    @property
    def steps(self) -> int:
        return int(round(self.time_ps * 1000.0 / self.dt_fs))

    def target_at(self, step: int) -> float:
        """The thermostat's target (K) at ``step``: ``temperature``, or the ramp's value."""
        if self.temperature_end is None:
            return self.temperature
        frac = min(1.0, max(0.0, step / self.steps))
        return self.temperature + frac * (self.temperature_end - self.temperature)


def set_thermostat_target(dynamics, temperature: float) -> None:
    """Set an ASE Langevin or Bussi thermostat's target to ``temperature`` K."""
    if hasattr(dynamics, "set_temperature"):  # Langevin
        dynamics.set_temperature(temperature_K=temperature)
    elif hasattr(dynamics, "target_kinetic_energy"):  # Bussi
        dynamics.temp = temperature * units.kB
        dynamics.target_kinetic_energy = 0.5 * dynamics.temp * dynamics.ndof
    else:
        raise TypeError(f"cannot set the target temperature of {type(dynamics).__name__}")


def make_dynamics(atoms: Atoms, s: MDSettings, logfile: str | None = None):
    """The ASE integrator for ``s`` (velocity Verlet; Langevin, Bussi or Nose-Hoover NVT)."""
    dt = s.dt_fs * units.fs
    if s.ensemble == "nve":
        from ase.md.verlet import VelocityVerlet

        return VelocityVerlet(atoms, timestep=dt, logfile=logfile)
    if s.thermostat == "langevin":
        from ase.md.langevin import Langevin

        return Langevin(
            atoms,
            timestep=dt,
            temperature_K=s.temperature,
            friction=1.0 / (s.tau_fs * units.fs),
            logfile=logfile,
            fixcm=False,
            rng=np.random.default_rng(s.seed + 1),
        )
    if s.thermostat == "bussi":
        from ase.md.bussi import Bussi

        return Bussi(
            atoms,
            timestep=dt,
            temperature_K=s.temperature,
            taut=s.tau_fs * units.fs,
            logfile=logfile,
            rng=np.random.default_rng(s.seed + 1),
        )
    from ase.md.nose_hoover_chain import NoseHooverChainNVT

    return NoseHooverChainNVT(
        atoms, timestep=dt, temperature_K=s.temperature, tdamp=s.tau_fs * units.fs, logfile=logfile
    )


def init_velocities(atoms: Atoms, temperature: float, seed: int) -> None:
    """Maxwell-Boltzmann velocities at ``temperature`` K, no net momentum."""
    from ase.md import velocitydistribution as vd

    rng = np.random.default_rng(seed)
    if hasattr(vd, "thermalize_momenta"):  # ASE >= 3.29
        vd.thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    else:
        vd.MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    vd.Stationary(atoms)


def run_md(
    atoms: Atoms,
    calc,
    settings: MDSettings,
    out_dir: str | Path,
    stability_config=None,
    reference=None,
    progress: bool = True,
    observers: Sequence[Callable[[Atoms, int], None]] = (),
) -> dict:
    """Run MD on ``atoms`` with ``calc``; write ``md.traj`` (every ``traj_interval`` steps),
    ``report.json``/``report.png`` (stability) and ``run.json`` into ``out_dir``.
    ``reference``: a ``StabilityReference``, a path, ``"none"``, or None / ``"model"`` for the
    training-data reference stored in the model file (see ``resolve_reference``).
    ``observers``: callables ``f(atoms, step)`` called before the first step (step 0) and after
    every MD step with the live atoms (calculator results of the current frame cached; they must
    not modify them) and the step number; they run before the stability check of the same step
    and do not change the trajectory (e.g. :class:`gnnff.active.committee.CommitteeObserver`).
    Returns the stability report. A Ctrl-C still leaves a valid trajectory and report."""
    from ase.io import Trajectory
    from tqdm import tqdm

    from gnnff.io_utils import atomic_write_json
    from gnnff.stability import StabilityConfig, StabilityMonitor, StabilityTracker, run_monitored
    from gnnff.stability.reference import resolve_reference

    settings.validate()
    reference = resolve_reference(reference, getattr(calc, "metadata", None))
    atoms = atoms.copy()
    start_info = {k: v for k, v in atoms.info.items() if isinstance(v, (int, float, str, bool))}
    atoms.info.clear()  # the start file's info (its temperature, frame index) is not this run's
    atoms.calc = calc
    atoms.get_forces()  # bad species or cell fail here, before anything in out_dir is touched
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    initialized = not np.any(atoms.get_velocities())
    if initialized:
        init_velocities(atoms, settings.temperature, settings.seed)
    dyn = make_dynamics(atoms, settings)
    if settings.temperature_end is not None:  # before the monitor: a check sees this step's
        dyn.attach(lambda: set_thermostat_target(dyn, settings.target_at(int(dyn.nsteps))))
    cfg = stability_config or StabilityConfig()
    if stability_config is None:
        cfg.interval = settings.check_interval
    traj = Trajectory(str(out / "md.traj"), "w", atoms, properties=["energy", "forces"])
    dyn.attach(traj.write, interval=settings.traj_interval)
    bar = tqdm(total=settings.steps, unit="step", desc="MD", disable=not progress)
    last = [0]

    def advance() -> None:
        bar.update(dyn.nsteps - last[0])
        last[0] = dyn.nsteps

    dyn.attach(advance, interval=max(1, settings.steps // 200))
    for observer in observers:
        dyn.attach(lambda f=observer: f(atoms, int(dyn.nsteps)), interval=1)
    # NVT: the thermostat's live target (a ramp included); NVE: the temperature the
    # velocities were drawn at, else (the structure's own velocities) the initial one
    fixed_target = (
        settings.temperature
        if settings.ensemble == "nve" and initialized and settings.temperature > 0
        else None
    )
    ramp = None if settings.temperature_end is None else (settings.temperature,
                                                          settings.temperature_end)  # fmt: skip
    tracker = StabilityTracker(cfg, reference, settings.ensemble, fixed_target,
                               settings.steps * settings.dt_fs / 1000.0, n_atoms=len(atoms),
                               target_ramp=ramp)  # fmt: skip
    monitor = StabilityMonitor(
        atoms, dyn, tracker, out_dir=out, keep_frames=settings.failure_frames
    )
    t0 = time.perf_counter()
    try:
        report = run_monitored(dyn, settings.steps, monitor)
    finally:
        traj.close()
        bar.close()
        wall = time.perf_counter() - t0
        atomic_write_json(
            out / "run.json",
            {
                "settings": asdict(settings),
                "steps_done": int(dyn.nsteps),
                "n_atoms": len(atoms),
                "wall_s": round(wall, 3),
                "start_info": start_info,
                "atom_steps_per_s": len(atoms) * int(dyn.nsteps) / max(wall, 1e-9),
            },
        )
    return report


def read_structure(path: str | Path, index: int = 0) -> Atoms:
    """One frame of any ASE-readable structure file."""
    from gnnff.io_utils import read_frames

    atoms = read_frames(path, index)[0]
    if len(atoms) == 0:
        raise MDConfigError(f"{path} frame {index} holds no atoms")
    return atoms


def format_report_line(report: dict) -> str:
    """The report's one-line verdict (:func:`gnnff.stability.verdict.format_verdict`, shared
    with ``gnnff lammps run``)."""
    from gnnff.stability.verdict import format_verdict

    return format_verdict(report)
