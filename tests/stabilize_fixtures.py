"""Test helpers for the stabilize loop: a loop that stops between two units of work, as a
killed run would, to test resuming."""

from __future__ import annotations

from typing import Any

from gnnff.active.loop import StabilizeLoop


class Interrupted(Exception):
    """Raised by :class:`InterruptingLoop` after its number of finished units."""


class InterruptingLoop(StabilizeLoop):
    """A :class:`StabilizeLoop` that raises :class:`Interrupted` once ``stop_after_units``
    units of work are finished (and cached)."""

    def __init__(self, *args: Any, stop_after_units: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._units_left = stop_after_units

    def _unit_done(self) -> None:
        self._units_left -= 1
        if self._units_left <= 0:
            raise Interrupted("stop_after_units reached")
