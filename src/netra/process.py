"""A ``netra`` process's start, as the garbage collector sees it.

A start allocates some 200,000 objects (modules, classes, pydantic schemas, routes) that live
as long as the process. With the collector on, each of its collections scans them again as
they accumulate (about a seventh of the start's CPU), and every full collection after the
start scans them once more. So a process turns the collector off before its first import
(``starting``), and once ready to work moves what it made out of every later collection and
turns the collector back on (``started``)."""

from __future__ import annotations

import gc


def starting() -> None:
    """Called first thing by the ``netra`` command."""
    gc.disable()


def started() -> None:
    """Called once the process is ready to work. Nothing happens where the collector is on:
    an application inside another process (the tests) leaves the collector to its owner."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
