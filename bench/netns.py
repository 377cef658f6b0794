"""A loopback-only network namespace for a benchmark (``unshare -n``).

The LangGraph dev server tries to reach the internet (analytics, LangSmith, version checks);
``bench/compare.py`` runs it, Netra and the client in one fresh network namespace whose only
interface is ``lo``, so nothing leaves the machine and no answer from outside (or its
timeout) lands in a measurement. The script re-executes itself inside: ``unshare -n sh -c
'ip link set lo up && exec python compare.py …'``. Needs ``unshare`` and ``ip`` and the
right to create a namespace (root, or CAP_SYS_ADMIN).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from typing import NoReturn

from processes import SetupError

MARKER_ENV = "BENCH_NETNS"
"""Set inside the namespace, so the re-executed script knows it is there (not NETRA_…:
Netra refuses settings it does not know)."""
_ENTER = 'ip link set lo up && exec "$@"'


def inside() -> bool:
    return os.environ.get(MARKER_ENV) == "1"


def reexec_inside(script: str, argv: list[str]) -> NoReturn:
    """Replace this process with `python script argv…` in a new loopback-only namespace."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        missing = "unshare" if unshare is None else "ip"
        raise SetupError(f"`{missing}` not found: it makes the loopback-only namespace")
    probe = subprocess.run(
        [unshare, "-n", ip, "link", "set", "lo", "up"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        raise SetupError(
            "cannot create a network namespace (`unshare -n`; root or CAP_SYS_ADMIN needed): "
            + (probe.stderr.strip() or f"exit status {probe.returncode}")
        )
    env = {**os.environ, MARKER_ENV: "1"}
    command = [unshare, "-n", "sh", "-c", _ENTER, "sh", sys.executable, script, *argv]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(unshare, command, env)  # noqa: S606 (no shell: the arguments are ours)


def outside_reachable() -> bool:
    """Whether this namespace has a route off the machine (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never a real host
        except OSError:
            return False
        return True
