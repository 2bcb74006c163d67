"""The rate limiter's own cost per Patreon call, in-process vs shared in the store.

One worker keeps ``patreon_client.ratelimit.RateLimiter`` (a lock and a list); several
workers use ``worker.shared_ratelimit.SharedRateLimiter`` (a read, a write transaction
to take the slot and one to finish it, on the store). This measures one
``slot()`` (take + release) of each, side by side in one run, on a throw-away SQLite
store in WAL mode, with limits too high to ever wait: the limiter's overhead alone,
from 1 thread and from 8. The limiters' clocks advance 50 ms per call, so a window
holds about 40 slots, as at Patreon's real pace (95 per 2 s), not thousands. A Patreon call itself takes 100+ ms, so the figure to judge
is the shared slot's cost against that, and the ratio says whether keeping the
in-process limiter for one worker is worth it.

Run alone: ``python -m bench --only ratelimit`` (or ``python -m bench.ratelimit``); it
needs no stack.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from bench.report import Line, Outcome
from patreon_client.ratelimit import RateLimiter
from store.database import Store
from worker.shared_ratelimit import SharedRateLimiter

NUMBER = 10
KEY = "ratelimit"
TITLE = "Rate limiter cost per call: shared in the store vs in-process"
GOAL = "shared slot well under a Patreon call (100 ms): <= 20 ms from 8 threads"
GOAL_SHARED_MS = 20.0
CALLS = 2000
HIGH = 10**9
STEP_S = 0.05


class SteppingClock:
    """Real time plus STEP_S per reading: windows stay as small as at the real pace."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0

    def __call__(self) -> float:
        with self._lock:
            self._offset += STEP_S / 2  # two readings per call
            return time.time() + self._offset


def per_call_us(limiter, threads: int, calls: int = CALLS) -> float:
    per_thread = calls // threads
    barrier = threading.Barrier(threads + 1)

    def run(i: int) -> None:
        barrier.wait()
        for n in range(per_thread):
            with limiter.slot(f"user:{i}:{n % 5}", time.monotonic() + 30):
                pass

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    barrier.wait()
    started = time.perf_counter()
    for w in workers:
        w.join()
    return (time.perf_counter() - started) / (per_thread * threads) * 1e6


def measure(calls: int = CALLS) -> list[tuple[int, float, float]]:
    """(threads, in-process us, shared us) per call, side by side."""
    results = []
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "bridge.sqlite3")
        store.migrate()
        per_call_us(RateLimiter(HIGH, HIGH, clock=SteppingClock()), 1, 200)  # warm-up
        per_call_us(SharedRateLimiter(store, HIGH, HIGH, wall_clock=SteppingClock()), 1, 200)
        for threads in (1, 8):
            local = per_call_us(RateLimiter(HIGH, HIGH, clock=SteppingClock()), threads, calls)
            shared = per_call_us(
                SharedRateLimiter(store, HIGH, HIGH, wall_clock=SteppingClock()), threads, calls
            )
            results.append((threads, local, shared))
    return results


def run(quick: bool) -> Outcome:
    outcome = Outcome(NUMBER, KEY, TITLE, GOAL)
    for threads, local, shared in measure(400 if quick else CALLS):
        outcome.add(
            Line(
                f"{threads} thread(s): shared / in-process",
                f"{shared / 1000:.2f} ms / {local / 1000:.3f} ms = {shared / local:.0f}x",
                goal=f"shared <= {GOAL_SHARED_MS:g} ms" if threads == 8 else "",
                met=shared / 1000 <= GOAL_SHARED_MS if threads == 8 else None,
            )
        )
    return outcome


def main() -> int:
    print("rate limiter cost per call (take + release), no waiting:")
    for threads, local, shared in measure():
        print(
            f"  {threads} thread(s): in-process {local:8.1f} us, shared (SQLite) {shared:8.1f} us,"
            f" shared / in-process = {shared / local:6.0f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
