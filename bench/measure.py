"""The timing harness every benchmark shares: percentiles, ratios, interleaved rounds
and a thread-pool load generator.

The machine is shared and noisy, so no benchmark reports a lone time. Each compares
two sides measured in the same run, round after round (A B A B ...), so a burst of
foreign load lands on both; and each reports ratios or percentile pairs.

Only pure logic (``percentile``, ``Summary.of``, ``ratio``, ``Series``) is unit-tested;
``run_batch`` is the part that touches clocks and threads.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable, Sequence

JOIN_TIMEOUT_S = 120.0  # a load thread that outlives this is a hung benchmark, not a slow one
ERROR_SAMPLES = 3  # how many distinct error messages a batch keeps for the report


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between closest ranks.

    The same definition as numpy's default ("linear"), so anyone can re-check a figure.
    """
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100 or math.isnan(q):
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclasses.dataclass(frozen=True)
class Summary:
    """A percentile pair (and the count behind it), in the samples' own unit."""

    count: int
    p50: float
    p99: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Summary:
        return cls(count=len(samples), p50=percentile(samples, 50), p99=percentile(samples, 99))

    def scaled(self, factor: float) -> Summary:
        """The same summary in another unit (seconds -> milliseconds: 1000)."""
        return Summary(self.count, self.p50 * factor, self.p99 * factor)


def ratio(numerator: float, denominator: float) -> float | None:
    """``numerator / denominator``, or ``None`` when the denominator is not positive."""
    if denominator <= 0 or math.isnan(denominator) or math.isnan(numerator):
        return None
    return numerator / denominator


@dataclasses.dataclass
class Batch:
    """What one round of load on one side produced."""

    latencies_s: list[float]
    errors: int
    elapsed_s: float
    error_messages: list[str] = dataclasses.field(default_factory=list)


class Series:
    """One side of a comparison, accumulated over interleaved rounds."""

    def __init__(self, name: str):
        self.name = name
        self.latencies_s: list[float] = []
        self.errors = 0
        self.elapsed_s = 0.0
        self.error_messages: list[str] = []

    def add(self, batch: Batch) -> None:
        self.latencies_s.extend(batch.latencies_s)
        self.errors += batch.errors
        self.elapsed_s += batch.elapsed_s
        for message in batch.error_messages:
            if message not in self.error_messages and len(self.error_messages) < ERROR_SAMPLES:
                self.error_messages.append(message)

    @property
    def completed(self) -> int:
        return len(self.latencies_s)

    @property
    def throughput(self) -> float:
        """Successful calls per second of load (errors are not throughput)."""
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary_ms(self) -> Summary:
        return Summary.of(self.latencies_s).scaled(1000.0)


def interleave(rounds: int, sides: Sequence[Callable[[], None]]) -> None:
    """Run ``sides`` in turn, ``rounds`` times: A B A B ... so noise hits every side."""
    for _ in range(rounds):
        for side in sides:
            side()


def run_batch(
    calls: Sequence[Callable[[], None]],
    *,
    per_thread: int | None = None,
    duration_s: float | None = None,
) -> Batch:
    """Drive ``calls`` (one per thread, each with its own connection) concurrently.

    Each thread repeats its call ``per_thread`` times, or until ``duration_s`` has
    passed; all start together behind a barrier. A call signals failure by raising;
    the exception counts as an error and the thread carries on. ``elapsed_s`` runs
    from the common start to the last thread's end, so calls still running at the
    deadline are part of the time they took.
    """
    if (per_thread is None) == (duration_s is None):
        raise ValueError("give exactly one of per_thread and duration_s")
    concurrency = len(calls)
    barrier = threading.Barrier(concurrency + 1)
    latencies: list[list[float]] = [[] for _ in calls]
    errors = [0] * concurrency
    messages: list[list[str]] = [[] for _ in calls]
    ends = [0.0] * concurrency
    start_box: list[float] = []

    def load(index: int) -> None:
        call = calls[index]
        mine = latencies[index]
        barrier.wait()
        started = start_box[0]
        deadline = started + duration_s if duration_s is not None else math.inf
        done = 0
        while (per_thread is None or done < per_thread) and time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                call()
            except Exception as ex:
                errors[index] += 1
                if len(messages[index]) < ERROR_SAMPLES:
                    messages[index].append(f"{type(ex).__name__}: {ex}"[:200])
            else:
                mine.append(time.perf_counter() - t0)
            done += 1
        ends[index] = time.perf_counter()

    threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    start_box.append(time.perf_counter())
    barrier.wait()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
        if thread.is_alive():
            raise TimeoutError(f"a load thread did not finish within {JOIN_TIMEOUT_S:g} s")
    started = start_box[0]
    unique: list[str] = []
    for message in (m for ms in messages for m in ms):
        if message not in unique:
            unique.append(message)
    return Batch(
        latencies_s=[x for xs in latencies for x in xs],
        errors=sum(errors),
        elapsed_s=max(ends) - started,
        error_messages=unique[:ERROR_SAMPLES],
    )
