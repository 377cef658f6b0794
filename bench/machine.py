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


CoreTimes = tuple[float, float, float]


def core_times(cpus: str | None) -> CoreTimes | None:
    """(busy, iowait, total) CPU seconds of the one core a server is pinned to, so far;
    None if it is not pinned to exactly one."""
    if cpus is None or not cpus.isdigit():
        return None
    times = psutil.cpu_times(percpu=True)[int(cpus)]
    total = sum(times)
    return total - times.idle - times.iowait, times.iowait, total


def core_share(before: CoreTimes | None, after: CoreTimes | None) -> dict[str, float]:
    """How busy the server's core was between two readings, whoever used it (other
    processes on a shared machine too), and how much of it waited on I/O."""
    if before is None or after is None or after[2] <= before[2]:
        return {}
    busy, iowait, total = (a - b for a, b in zip(after, before, strict=True))
    return {
        "server_core_busy": round(busy / total, 2),
        "server_core_iowait": round(iowait / total, 2),
    }
