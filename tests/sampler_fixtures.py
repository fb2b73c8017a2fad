"""Sample jobs that crash like COMB did, for tests/test_teacher.py (importable by name, so
that a spawned child process can unpickle them)."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

from ase import Atoms

from gnnff.data.samplers import SampleJob


@dataclass(frozen=True)
class CrashingJob(SampleJob):
    """Segfaults on attempts below ``crashes``, then returns one Si atom per frame."""

    crashes: int = 1

    def run(self, attempt: int = 0) -> list[Atoms]:
        if self.crashes < 0:
            raise KeyError("no such preset key: melt")  # a Python error, not a crash
        if attempt < self.crashes:
            os.kill(os.getpid(), signal.SIGSEGV)
        return [Atoms("Si", cell=[5.0] * 3, pbc=True, info={"attempt": attempt})] * self.frames

    @property
    def isolated(self) -> bool:
        return True
