"""Python's cyclic garbage collector, set for a process that holds many connections.

Each connection keeps a few hundred GC-tracked objects for as long as it stays open:
the engine.io socket, its writer task, queues and timers. With CPython's default
thresholds (700, 10, 10), the objects a broadcast makes for each client are still alive
at the next young collection, so they are promoted, the oldest generation soon counts
enough collections, and CPython collects it whole. With 10,000 connections (450 MB)
that was 18 full collections in a 60 s benchmark, up to 1.4-1.6 s each, every client
stalled meanwhile (bench/PROFILES.md, "9, live fan-out").

The defaults here: a young generation of 100,000 (a broadcast's objects die before a
collection sees them), a middle one collected every 50 young ones, and the whole heap
considered only every 100 middle ones (500 million allocations; hours under that
benchmark's load), and then only if it has grown by a quarter (CPython's own rule). So
a full collection still comes, and cyclic garbage is not kept for good, but rarely.
``gc.freeze()`` after start-up takes what was imported out of every later collection.

The pauses are recorded (``gc.callbacks``) and shown in live's health answer, so an
operator who sees lag can tell a collection from a busy loop.
"""

from __future__ import annotations

import gc
import time
from typing import Any

DEFAULT_THRESHOLDS = (100_000, 50, 100)
GENERATIONS = 3


class PauseRecord:
    """Collections per generation, their longest pause and their total, in ms."""

    def __init__(self) -> None:
        self.collections = [0] * GENERATIONS
        self.longest_ms = [0.0] * GENERATIONS
        self.total_ms = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        elapsed_ms = (time.perf_counter() - self._started) * 1000
        self.collections[generation] += 1
        self.total_ms += elapsed_ms
        if elapsed_ms > self.longest_ms[generation]:
            self.longest_ms[generation] = elapsed_ms

    def snapshot(self) -> dict[str, Any]:
        return {
            "thresholds": list(gc.get_threshold()),
            "collections": list(self.collections),
            "longestPauseMs": [round(ms, 1) for ms in self.longest_ms],
            "totalPauseMs": round(self.total_ms, 1),
        }


_record: PauseRecord | None = None


def tune(thresholds: tuple[int, int, int]) -> None:
    """Freeze what start-up made, set the thresholds, and start recording pauses.

    Called once, after the program is built and before it takes clients."""
    global _record
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    if _record is None:
        _record = PauseRecord()
        gc.callbacks.append(_record)


def pauses() -> dict[str, Any] | None:
    """What ``tune`` has recorded so far; None when it was never called (tests)."""
    return _record.snapshot() if _record is not None else None


def parse_thresholds(text: str) -> tuple[int, int, int]:
    """``"100000,50,100"`` -> ``(100000, 50, 100)``; ``ValueError`` says what is wrong."""
    parts = [part.strip() for part in text.split(",")]
    if len(parts) != GENERATIONS or not all(part.isdigit() for part in parts):
        raise ValueError(f"must be three whole numbers like 100000,50,100, got {text!r}")
    young, middle, old = (int(part) for part in parts)
    if not 100 <= young <= 10_000_000 or not 1 <= middle <= 1000 or not 1 <= old <= 1000:
        raise ValueError("the first must be 100..10000000 and the others 1..1000")
    return young, middle, old
