"""A netra process's garbage collector: off while it starts, then frozen, tuned and on; left
alone in a process that did not start it off (the tests' in-process servers)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
from netra import process
{start}
process.started()
print(gc.isenabled(), gc.get_threshold()[0], gc.get_freeze_count() > 0)
"""


def _probe(start: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(start=start)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


def test_a_started_process_freezes_what_it_made_and_collects_young_objects_less_often() -> None:
    from netra.process import YOUNG_THRESHOLD

    assert _probe("process.starting()") == f"True {YOUNG_THRESHOLD} True"


def test_a_process_that_kept_its_collector_on_is_left_as_it_was() -> None:
    assert _probe("") == "True 700 False"
