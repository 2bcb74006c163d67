"""Benchmark 8, access checks: ``GET /api/patreon/access`` at 1,000 requests a second.

Runs on the member-sync stack after its syncs (10,000 members in the table), for
random users (2..10,001, plus some unknown ids) and random tiers, with the server key.

The load comes from ``bench.open_loop``, a process of its own (not threads of this
one): an open-loop schedule of one request every 1 ms over 32 keep-alive
connections, latency measured from each request's *scheduled* time to the end of its
body, so a request that waited for a connection or for the CPU counts as slow
(see that module). Send lateness and latency from the actual send are reported too.

Side by side, round after round (A B A B ...), the same generator at the same rate
drives ``bench.bare_waitress``: waitress with web's thread count answering a fixed
body, no Falcon, no store, no logging. That is the floor this machine and this
server allow; the bridge cannot be faster than it. CPU milliseconds per request
are given for web, the floor server and the generator.

The sandbox's request counter before and after shows whether any check reached
Patreon (goal: zero). The app's own cost per check, called in-process on the
stack's store (Falcon test client, no HTTP), is the last line.

Run alone: ``python -m bench --only access`` (or ``python -m bench.access``).
"""

from __future__ import annotations

import json
import logging
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench import stacks
from bench.machine import cpu_seconds
from bench.measure import Summary, interleave
from bench.report import Line, Outcome, fmt_ms
from bench.stacks import MEMBERS, Run
from harness.stack import free_port, wait_for

NUMBER = 8
KEY = "access"
TITLE = "Access checks at 1,000 requests/s"
GOAL = "p99 < 2 ms, zero sandbox calls"

RATE_PER_S = 1000
CONNECTIONS = 32
ROUNDS = 2
GOAL_P99_MS = 2.0
LATE_MS = 2.0
GENERATOR_GRACE_S = 10.0
DEFAULT_WEB_THREADS = 32  # the stack runs web with settings.config's default
TIERS = ("3001", "3002", "3003", "3004")
REPO = Path(__file__).resolve().parent.parent  # where ``python -m bench.*`` finds the code


class Side:
    """One side of the comparison, over all its rounds."""

    def __init__(self, name: str):
        self.name = name
        self.from_schedule: list[float] = []
        self.from_send: list[float] = []
        self.late: list[float] = []
        self.completed = 0
        self.scheduled = 0
        self.errors = 0
        self.unfinished = 0
        self.non_200 = 0
        self.error_samples: list[str] = []
        self.elapsed_s = 0.0
        self.server_cpu_s = 0.0
        self.generator_cpu_s = 0.0

    def add(self, result: dict, scheduled: int, server_cpu_s: float) -> None:
        self.from_schedule += result["latency_from_schedule_s"]
        self.from_send += result["latency_from_send_s"]
        self.late += result["send_late_s"]
        self.completed += result["completed"]
        self.scheduled += scheduled
        self.errors += result["errors"]
        self.unfinished += result["unfinished"]
        self.non_200 += sum(n for status, n in result["statuses"].items() if status != "200")
        self.error_samples = (self.error_samples + result["error_samples"])[:3]
        self.elapsed_s += result["elapsed_s"]
        self.server_cpu_s += server_cpu_s
        self.generator_cpu_s += result["cpu_s"]

    def per_request_ms(self, seconds: float) -> float:
        return seconds * 1000.0 / self.completed if self.completed else float("nan")


def generate(port: int, headers: dict[str, str], paths: list[str]) -> dict:
    """One open-loop round from a process of its own (``bench.open_loop``)."""
    spec = {
        "host": "127.0.0.1",
        "port": port,
        "headers": headers,
        "paths": paths,
        "rate": RATE_PER_S,
        "connections": CONNECTIONS,
        "grace_s": GENERATOR_GRACE_S,
    }
    timeout = len(paths) / RATE_PER_S + GENERATOR_GRACE_S + 30.0
    done = subprocess.run(
        [sys.executable, "-m", "bench.open_loop"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
        cwd=REPO,
    )
    return json.loads(done.stdout)


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
    per_round = total // ROUNDS
    state = lambda: ctx.stack.sandbox("GET", "/_sandbox/state").json()  # noqa: E731
    warm = ctx.server_client()
    for path in paths[:200]:
        warm.get(path, expect=200)
    warm.close()
    web_pid = stacks.supervised_pids(ctx.stack)["web"]
    floor_port = free_port()
    floor = subprocess.Popen(
        [sys.executable, "-m", "bench.bare_waitress", str(floor_port), str(DEFAULT_WEB_THREADS)],
        cwd=REPO,
    )
    try:
        wait_for(lambda: _serves(floor_port), 20.0, interval_s=0.1, what="the bare waitress floor")
        generate(floor_port, {}, ["/"] * 200)  # warm its threads as the bridge's were
        bridge, bare = Side("bridge"), Side("bare waitress")
        headers = {"Authorization": f"Bearer {ctx.api_key}"}
        requests_before = state()["requests"]
        round_index = [0, 0]

        def load(side: Side, port: int, pid: int, slot: int, with_key: bool) -> None:
            start = round_index[slot] * per_round
            round_paths = paths[start : start + per_round]
            round_index[slot] += 1
            before = cpu_seconds({"p": pid}).get("p", 0.0)
            result = generate(port, headers if with_key else {}, round_paths)
            side.add(result, len(round_paths), cpu_seconds({"p": pid}).get("p", 0.0) - before)

        interleave(
            ROUNDS,
            [
                lambda: load(bridge, ctx.stack.port, web_pid, 0, True),
                lambda: load(bare, floor_port, floor.pid, 1, False),
            ],
        )
        sandbox_calls = state()["requests"] - requests_before
    finally:
        floor.terminate()
        floor.wait(10)
    in_process = in_process_ms(ctx, paths[:2000])

    def latency(side: Side, samples: list[float]) -> Summary | None:
        return Summary.of(samples).scaled(1000.0) if samples else None

    b_sched, f_sched = latency(bridge, bridge.from_schedule), latency(bare, bare.from_schedule)
    b_send, f_send = latency(bridge, bridge.from_send), latency(bare, bare.from_send)
    problems = bridge.errors + bridge.unfinished + bridge.non_200
    outcome.add(
        Line(
            "requests (bridge)",
            f"{bridge.completed:,} of {bridge.scheduled:,} in {bridge.elapsed_s:.1f} s "
            f"({bridge.completed / bridge.elapsed_s:.0f}/s achieved), {ROUNDS} rounds",
        ),
        Line(
            "latency from the scheduled send, p50 / p99: bridge",
            fmt_ms(b_sched) if b_sched else "none completed",
            goal=f"p99 < {GOAL_P99_MS} ms",
            met=b_sched is not None and b_sched.p99 < GOAL_P99_MS,
        ),
        Line(
            "same, floor: bare waitress (fixed body, same generator and rate)",
            fmt_ms(f_sched) if f_sched else "none completed",
        ),
        Line(
            "latency from the actual send, p50 / p99: bridge vs floor",
            f"{fmt_ms(b_send) if b_send else '-'} vs {fmt_ms(f_send) if f_send else '-'}",
        ),
        Line(
            f"sends more than {LATE_MS:g} ms behind schedule: bridge vs floor",
            f"{sum(1 for x in bridge.late if x > LATE_MS / 1000):,} of {len(bridge.late):,} vs "
            f"{sum(1 for x in bare.late if x > LATE_MS / 1000):,} of {len(bare.late):,}",
        ),
        Line(
            "CPU ms per request: web vs bare waitress; the generator (bridge side)",
            f"{bridge.per_request_ms(bridge.server_cpu_s):.3f} vs {bare.per_request_ms(bare.server_cpu_s):.3f}; "
            f"{bridge.per_request_ms(bridge.generator_cpu_s):.3f}",
        ),
        Line(
            "errors, unanswered or non-200 (bridge)",
            f"{problems}" + (f" ({'; '.join(bridge.error_samples)})" if bridge.error_samples else ""),
            goal="0",
            met=problems == 0,
        ),
        Line("calls that reached the sandbox", str(sandbox_calls), goal="0", met=sandbox_calls == 0),
        Line("one check in-process (Falcon test client on the same store, no HTTP)", f"{in_process:.3f} ms"),
    )
    return outcome


def _serves(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def in_process_ms(ctx: Run, paths: list[str]) -> float:
    """The app's own cost of a check: web's app on the stack's store, called in-process."""
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
    from bench.__main__ import main

    sys.exit(main(["--only", KEY, *sys.argv[1:]]))
