"""What a benchmark ran on: the machine, and how busy it was."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path

import psutil


def machine_info() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages of the whole machine (other users' work included)."""
    return [round(value, 2) for value in os.getloadavg()]
