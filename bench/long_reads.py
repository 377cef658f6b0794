"""Long reads beside the one SQLite writer: what a long thread's conversation does to everyone
else's writes.

One SQLite file (``DatabaseManager``, the hot path's executor), a thread of ``--messages``
messages (1,000 by default: the most a run reads of its conversation) and an empty one.
Two tasks read the long thread's conversation over and over (``MessageRepository.texts``, as
a run does) while four tasks add messages to the other thread, one after another, for
``--seconds``. Rounds alternate between the two ways a read can go: ``transact`` (on the
writer's connection, in its groups: where a run's conversation was read before) and
``query`` (a read-only connection of its own, beside the writer: where a conversation longer
than the admission reads is read now). Prints JSON: for each round the writes and reads per
second and the process's CPU time, the median of each way, the load average and the machine.

    python bench/long_reads.py
    python bench/long_reads.py --rounds 3 --messages 500
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from machine import load_average, machine_info
from netra.context import UserExecutionContext
from netra.db.accounts import UserRepository
from netra.db.manager import DatabaseManager
from netra.db.messages import MessageRepository
from netra.db.repositories import ThreadRepository
from netra.db.sql import Tx
from netra.settings import DatabaseSettings
from stats import median

READERS = 2
WRITERS = 4
TEXT = "what is the meaning of this particular sentence " * 6
"""~300 characters, a short chat message."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000, help="the long thread's length")
    parser.add_argument("--seconds", type=float, default=3.0, help="each round's length")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each way (default 2)")
    return parser.parse_args()


async def measure(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    db = DatabaseManager(f"sqlite+aiosqlite:///{data_dir / 'netra.db'}", DatabaseSettings())
    await db.upgrade()
    user = await db.transact(UserRepository.create("a@b.c", "h", roles=["user"], tier="free"))
    ctx = UserExecutionContext(user_id=user.id)
    threads, messages = ThreadRepository(ctx), MessageRepository(ctx)
    long = await db.transact(threads.create(title="long", agent="assistant"))
    other = await db.transact(threads.create(title="other", agent="assistant"))

    def fill() -> Tx[str | None]:
        parent: str | None = None
        for index in range(args.messages - 1):
            role = "user" if index % 2 == 0 else "assistant"
            said = yield from messages.add(
                thread_id=long.id, role=role, content=TEXT, parent_id=parent
            )
            parent = said.id
        return parent

    leaf = await db.transact(fill())
    question = await db.transact(
        messages.add(thread_id=long.id, role="user", content="and now?", parent_id=leaf)
    )
    rounds: list[dict[str, Any]] = []
    for _ in range(args.rounds):
        for way, read in (("transact", db.transact), ("query", db.query)):
            rounds.append(
                await one_round(
                    args,
                    db,
                    messages=messages,
                    way=way,
                    read=read,
                    question_id=question.id,
                    other_id=other.id,
                )
            )
    await db.close()
    return {
        way: {
            key: median([r[key] for r in rounds if r["way"] == way])
            for key in ("writes_per_s", "reads_per_s", "cpu_s")
        }
        | {"rounds": [r for r in rounds if r["way"] == way]}
        for way in ("transact", "query")
    }


async def one_round(
    args: argparse.Namespace,
    db: DatabaseManager,
    *,
    messages: MessageRepository,
    way: str,
    read: Callable[[Tx[Any]], Coroutine[Any, Any, Any]],
    question_id: str,
    other_id: str,
) -> dict[str, Any]:
    stop = asyncio.Event()
    counts = {"reads": 0, "writes": 0}

    async def reader() -> None:
        while not stop.is_set():
            await read(messages.texts(question_id))
            counts["reads"] += 1

    async def writer() -> None:
        parent: str | None = None
        while not stop.is_set():
            said = await db.transact(
                messages.add(thread_id=other_id, role="user", content="hi", parent_id=parent)
            )
            parent = said.id
            counts["writes"] += 1

    tasks = [asyncio.create_task(reader()) for _ in range(READERS)]
    tasks += [asyncio.create_task(writer()) for _ in range(WRITERS)]
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(args.seconds)
    stop.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - wall
    return {
        "way": way,
        "writes_per_s": round(counts["writes"] / elapsed),
        "reads_per_s": round(counts["reads"] / elapsed, 1),
        "cpu_s": round(time.process_time() - cpu, 2),
        "seconds": round(elapsed, 2),
    }


def main() -> None:
    args = parse_args()
    before = load_average()
    with tempfile.TemporaryDirectory(prefix="long-reads-") as data_dir:
        results = asyncio.run(measure(args, Path(data_dir)))
    report = {
        "benchmark": "long_reads",
        "workload": {
            "messages": args.messages,
            "seconds": args.seconds,
            "readers": READERS,
            "writers": WRITERS,
        },
        "results": results,
        "load_average_before": before,
        "load_average_after": load_average(),
        "machine": machine_info(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
