"""Crash points: places on the write path where a test makes the process kill itself, so a
crash at exactly that point can be reproduced from outside (``faults`` settings)."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Collection
from pathlib import Path

from netra.settings import FaultSettings

log = logging.getLogger(__name__)


class CrashPoints:
    """Process-wide; does nothing unless ``faults.crash_at`` names a point."""

    def __init__(self, settings: FaultSettings) -> None:
        self._point = settings.crash_at
        self._armed_by = Path(settings.crash_armed_by) if settings.crash_armed_by else None

    def reached(self, point: str, run_ids: Collection[str]) -> None:
        """Die here (SIGKILL: no cleanup, like a power cut) when ``point`` is armed for one
        of ``run_ids`` (the runs at this point; none: nothing to crash for)."""
        if point != self._point or not run_ids or not self._armed(run_ids):
            return
        log.warning("crash point %s reached: this process kills itself (faults.crash_at)", point)
        os.kill(os.getpid(), signal.SIGKILL)

    def _armed(self, run_ids: Collection[str]) -> bool:
        if self._armed_by is None:
            return True
        try:
            if self._armed_by.read_text().strip() not in run_ids:
                return False
            self._armed_by.unlink()  # whoever removes it first decides (the test may too)
        except FileNotFoundError:
            return False
        return True
