"""A ``netra`` process's start, as the garbage collector sees it.

A start allocates some 200,000 objects (modules, classes, pydantic schemas, routes) that live
as long as the process. With the collector on, each of its collections scans them again as
they accumulate (about a seventh of the start's CPU), and every full collection after the
start scans them once more. So a process turns the collector off before its first import
(``starting``), and once ready to work moves what it made out of every later collection and
turns the collector back on (``started``).

Serving, the process allocates a stream of short-lived objects (an event's futures, tasks and
envelopes live for milliseconds, or seconds in a backlog) beside few long-lived ones (sockets,
sessions). Collected every 700 allocations, as by default, many are still in flight at each
young collection, get promoted, and then make the older generations' collections frequent and
long; so the youngest generation is collected every ``YOUNG_THRESHOLD`` allocations instead."""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000
"""Allocations between two collections of the youngest generation (Python's default: 700)."""


def starting() -> None:
    """Called first thing by the ``netra`` command."""
    gc.disable()


def started() -> None:
    """Called once the process is ready to work. Nothing happens where the collector is on:
    an application inside another process (the tests) leaves the collector to its owner."""
    if not gc.isenabled():
        gc.freeze()
        _, middle, old = gc.get_threshold()
        gc.set_threshold(YOUNG_THRESHOLD, middle, old)
        gc.enable()
