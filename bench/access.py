"""Benchmark 8, access checks: ``GET /api/patreon/access`` at 1,000 requests a second.

Runs on the member-sync stack after its syncs (10,000 members in the table). An
open-loop load: requests are scheduled every 1 ms and sent by a pool of threads,
each with its own keep-alive connection and the server key, for random users
(2..10,001, plus some unknown ids) and random tiers. Latency is measured per request
from send to the end of the body, in the benchmark process on the same 2 cores as
the stack. The sandbox's request counter before and after shows whether any check
reached Patreon (goal: zero).

Run alone: ``python -m bench --only access`` (or ``python -m bench.access``).
"""

from __future__ import annotations

import logging
import random
import threading
import time

from bench.measure import Summary
from bench.report import Line, Outcome, fmt_ms
from bench.stacks import MEMBERS, Run

NUMBER = 8
KEY = "access"
TITLE = "Access checks at 1,000 requests/s"
GOAL = "p99 < 2 ms, zero sandbox calls"

RATE_PER_S = 1000
THREADS = 12
GOAL_P99_MS = 2.0
TIERS = ("3001", "3002", "3003", "3004")


def run(ctx: Run) -> Outcome:
    outcome = Outcome(NUMBER, KEY, TITLE, GOAL)
    duration_s = ctx.seconds(10.0, 2.0)
    total = int(RATE_PER_S * duration_s)
    rng = random.Random(11)
    paths = [
        f"/api/patreon/access?userId={rng.randint(2, MEMBERS + 1) if rng.random() < 0.95 else 99_000_000}"
        f"&tierId={rng.choice(TIERS)}"
        for _ in range(total)
    ]
    state = lambda: ctx.stack.sandbox("GET", "/_sandbox/state").json()  # noqa: E731
    warm = ctx.server_client()
    for path in paths[:200]:
        warm.get(path, expect=200)
    warm.close()
    requests_before = state()["requests"]

    latencies: list[float] = []
    late: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    next_index = [0]
    start_at = time.perf_counter() + 0.2

    def load() -> None:
        client = ctx.server_client()
        mine, my_late = [], []
        try:
            while True:
                with lock:
                    index = next_index[0]
                    next_index[0] += 1
                if index >= total:
                    break
                due = start_at + index / RATE_PER_S
                wait = due - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                else:
                    my_late.append(-wait)
                t0 = time.perf_counter()
                reply = client.get(paths[index])
                mine.append(time.perf_counter() - t0)
                if reply.status != 200:
                    errors.append(f"{reply.status}")
        finally:
            client.close()
            with lock:
                latencies.extend(mine)
                late.extend(my_late)

    threads = [threading.Thread(target=load) for _ in range(THREADS)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    elapsed = time.perf_counter() - max(began, start_at)
    sandbox_calls = state()["requests"] - requests_before
    summary = Summary.of(latencies).scaled(1000.0)
    behind = sum(1 for x in late if x > 0.002)
    in_process = in_process_ms(ctx, paths[:2000])
    outcome.add(
        Line(
            "requests", f"{len(latencies):,} in {elapsed:.1f} s ({len(latencies) / elapsed:.0f}/s achieved)"
        ),
        Line(
            "latency p50 / p99",
            fmt_ms(summary),
            goal=f"p99 < {GOAL_P99_MS} ms",
            met=summary.p99 < GOAL_P99_MS,
        ),
        Line("errors", str(len(errors)), goal="0", met=not errors),
        Line("sends more than 2 ms behind schedule", f"{behind:,} of {len(latencies):,}"),
        Line("calls that reached the sandbox", str(sandbox_calls), goal="0", met=sandbox_calls == 0),
        Line("one check in-process (Falcon test client on the same store, no HTTP)", f"{in_process:.3f} ms"),
    )
    return outcome


def in_process_ms(ctx: Run, paths: list[str]) -> float:
    """The app's own cost of a check: web's app on the stack's store, called in-process."""
    from pathlib import Path
    from urllib.parse import parse_qsl, urlsplit

    from falcon import testing

    from settings.config import load_config
    from store.database import Store
    from web.app import create_app

    data_dir = ctx.stack.dir / "var"
    config = load_config(
        {"BRIDGE_API_KEY": ctx.api_key, "DATA_DIR": str(data_dir)}, Path("/nonexistent/.env")
    )
    client = testing.TestClient(create_app(config, worker=None, store=Store(config.database_url)))  # type: ignore[arg-type]
    headers = {"Authorization": f"Bearer {ctx.api_key}"}
    queries = [dict(parse_qsl(urlsplit(p).query)) for p in paths]
    # The access log would print every call to this process's stderr and time that too.
    logging.getLogger("web.access").setLevel(logging.WARNING)
    for query in queries[:100]:
        client.simulate_get("/api/patreon/access", params=query, headers=headers)
    started = time.perf_counter()
    for query in queries:
        client.simulate_get("/api/patreon/access", params=query, headers=headers)
    return (time.perf_counter() - started) / len(queries) * 1000.0


if __name__ == "__main__":
    import sys

    from bench.__main__ import main

    sys.exit(main(["--only", KEY, *sys.argv[1:]]))
