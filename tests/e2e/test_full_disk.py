"""A full disk under the embedded SQLite database: a real, small tmpfs the test mounts (as
root; elsewhere skipped, saying why), filled by a file until writes fail. While the disk is
full, a write is answered 503 ``storage_unavailable`` with ``Retry-After``, ``/ready`` says
``not_ready`` with the database's reason, and the executing run waits for the storage with
its events in order instead of wedging or losing any; once space is freed it goes on to its
end, the instance is ready again and the same thread takes new messages, which run."""

from __future__ import annotations

import contextlib
import errno
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.support import assert_run_grammar, eventually, hold_runs, make_user, open_socket

DISK_BYTES = 8 * 1024 * 1024
MOUNT = shutil.which("mount") or "/usr/bin/mount"
UMOUNT = shutil.which("umount") or "/usr/bin/umount"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A fresh tmpfs of ``DISK_BYTES``, unmounted at the end."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        [MOUNT, "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run([UMOUNT, "-l", str(mount)], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until the filesystem has no byte left."""
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as out:
        while True:
            try:
                out.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        with contextlib.suppress(OSError):
            while True:
                out.write(b"\0")  # the last partial block


@pytest.mark.parametrize("backend", [None])
async def test_a_full_disk_fails_writes_clearly_and_nothing_wedges(
    small_disk: Path, server_factory: ServerFactory
) -> None:
    server = server_factory(small_disk / "data", models={"default": "scripted"})
    gate = threading.Event()
    hold_runs(server, gate, holds=lambda request: "wait" in request.messages[-1].content)
    filler = small_disk / "filler"
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        user = await make_user(http)
        socket = await open_socket(server, user.token)
        ack = await socket.send_message("please wait")
        await socket.first(lambda f: f.get("type") == "tool_executing")

        fill(filler)  # the run is in its tool; the disk is full now
        gate.set()  # the run goes on: its tool call's outcome waits to be stored

        refused = await http.post("/threads", json={"title": "while full"}, headers=user.auth)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "storage_unavailable"
        assert int(refused.headers["Retry-After"]) >= 1

        frame = await socket.send_message("while full")
        assert frame["type"] == "error" and frame["code"] == "storage_unavailable", frame
        assert frame["retry_after"] >= 1, frame

        ready = await http.get("/ready")
        assert ready.status_code == 503, ready.text
        database = ready.json()["checks"]["database"]
        assert not database["healthy"] and "full" in database["reason"], database

        filler.unlink()  # the operator frees space
        events = await socket.run_to_end(ack["run_id"], timeout=30)
        assert_run_grammar(events)
        assert events[-1]["data"]["outcome"] == "completed", events[-1]
        done = [e["data"]["status"] for e in events if e["type"] == "tool_completed"]
        assert done == ["ok"], done  # stored as it ended, once there was room
        run = (await http.get(f"/runs/{ack['run_id']}", headers=user.auth)).json()
        assert run["status"] == "completed", run

        async def is_ready() -> bool:
            return (await http.get("/ready")).status_code == 200

        await eventually(is_ready, "the instance is ready again once writes succeed", 30)
        again = await socket.send_message("hello again", thread_id=ack["thread_id"])
        events = await socket.run_to_end(again["run_id"], timeout=30)
        assert events[-1]["data"]["outcome"] == "completed", events[-1]
        await socket.close()
