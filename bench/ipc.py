"""Benchmark 1, IPC overhead: what one web -> worker ZeroMQ round trip adds to a request.

Sides, interleaved round by round at concurrency 1 with one keep-alive connection:

* ``GET /api/patreon/status``: answered by web alone (the liveness snapshot);
* ``GET /api/patreon/health``: the same web path plus one ``ping`` to the worker;
* the floor: a raw pyzmq REQ/REP round trip over ipc:// between this process and an
  echo subprocess (``bench.echo``), with the bytes of a real ``ping`` frame;
* for the breakdown: a REQ ping straight to the real worker's socket (no HTTP), i.e.
  the worker's loop plus the transport.

Goal: health's p50 at most 1.15x status's p50.
"""

from __future__ import annotations

import select
import subprocess
import sys

import requests
import zmq

from bench.measure import Batch, Series, Summary, interleave, ratio, run_batch
from bench.report import Line, Outcome, fmt_ms, fmt_ratio
from bench.stacks import Run
from wire import protocol

NUMBER = 1
KEY = "ipc"
TITLE = "IPC overhead"
GOAL = "the worker hop adds at most 15% to p50 (health p50 <= 1.15x status p50)"

GOAL_RATIO = 1.15
ECHO_START_TIMEOUT_S = 10.0
ZMQ_TIMEOUT_MS = 2000
REQUESTS_TIMEOUT_S = 10.0


class ZmqPinger:
    """One REQ socket sending a real ``ping`` frame and waiting for the answer."""

    def __init__(self, context: zmq.Context, endpoint: str):
        self.sock = context.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.RCVTIMEO, ZMQ_TIMEOUT_MS)
        self.sock.connect(endpoint)
        _, self.frame = protocol.encode_request("ping", {}, 1000)

    def __call__(self) -> None:
        self.sock.send(self.frame)
        self.sock.recv()

    def close(self) -> None:
        self.sock.close(linger=0)


def _start_echo(endpoint: str) -> subprocess.Popen:
    echo = subprocess.Popen(
        [sys.executable, "-m", "bench.echo", endpoint],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    ready, _, _ = select.select([echo.stdout], [], [], ECHO_START_TIMEOUT_S)
    line = echo.stdout.readline().strip() if ready else ""
    if line != "ready":
        echo.kill()
        echo.wait(5)
        raise RuntimeError(f"the echo subprocess did not start within {ECHO_START_TIMEOUT_S:g} s")
    return echo


def run(ctx: Run) -> Outcome:
    outcome = Outcome(NUMBER, KEY, TITLE, GOAL)
    rounds = ctx.scale(12, 3)
    per_round = ctx.scale(300, 60)
    warmup = ctx.scale(200, 30)

    http = ctx.client()
    status = lambda: http.get("/api/patreon/status", expect=200)  # noqa: E731
    health = lambda: http.get("/api/patreon/health", expect=200)  # noqa: E731
    # The same comparison with requests.Session, the client a Python site backend would
    # use: informative only, since its own ~0.5 ms per call dilutes the hop's share.
    session = requests.Session()

    def via_requests(path: str):
        def call() -> None:
            reply = session.get(ctx.stack.base_url + path, timeout=REQUESTS_TIMEOUT_S)
            if reply.status_code != 200:
                raise RuntimeError(f"GET {path} -> {reply.status_code}")

        return call

    context = zmq.Context()
    echo_endpoint = f"ipc://{ctx.stack.dir / 'var' / 'bench-echo.sock'}"
    echo = _start_echo(echo_endpoint)
    raw = ZmqPinger(context, echo_endpoint)
    worker = ZmqPinger(context, f"ipc://{ctx.stack.dir / 'var' / 'worker.sock'}")
    calls = {
        "status": status,
        "health": health,
        "raw": raw,
        "worker": worker,
        "status (requests)": via_requests("/api/patreon/status"),
        "health (requests)": via_requests("/api/patreon/health"),
    }
    series = {name: Series(name) for name in calls}
    try:
        for call in calls.values():
            run_batch([call], per_thread=warmup)

        def side(name: str):
            def measure() -> None:
                batch: Batch = run_batch([calls[name]], per_thread=per_round)
                series[name].add(batch)

            return measure

        interleave(rounds, [side(name) for name in calls])
    finally:
        raw.close()
        worker.close()
        echo.stdin.close()
        try:
            echo.wait(5)
        except subprocess.TimeoutExpired:
            echo.kill()
        context.term()
        http.close()
        session.close()

    errors = {name: s.errors for name, s in series.items() if s.errors}
    if errors:
        outcome.notes.append(f"Errors during the run: {errors}; {series['health'].error_messages}")
    ms: dict[str, Summary] = {name: s.summary_ms() for name, s in series.items()}
    p50_ratio = ratio(ms["health"].p50, ms["status"].p50)
    outcome.add(
        Line(
            "health (1 hop) vs status (0 hops), p50/p99",
            f"{fmt_ms(ms['health'])} vs {fmt_ms(ms['status'])}",
        ),
        Line(
            "health/status p50 ratio (p99 ratio)",
            f"{fmt_ratio(p50_ratio)} ({fmt_ratio(ratio(ms['health'].p99, ms['status'].p99))})",
            goal=f"<= {GOAL_RATIO:.2f}x",
            met=p50_ratio is not None and p50_ratio <= GOAL_RATIO and not errors,
        ),
        Line("hop cost: health p50 - status p50", f"{ms['health'].p50 - ms['status'].p50:.3f} ms"),
        Line("floor: raw pyzmq REQ/REP over ipc://, p50/p99", fmt_ms(ms["raw"])),
        Line("REQ ping to the real worker (no HTTP), p50/p99", fmt_ms(ms["worker"])),
        Line(
            "with requests.Session instead: health vs status p50/p99 (p50 ratio)",
            f"{fmt_ms(ms['health (requests)'])} vs {fmt_ms(ms['status (requests)'])} "
            f"({fmt_ratio(ratio(ms['health (requests)'].p50, ms['status (requests)'].p50))})",
        ),
    )
    outcome.notes.append(
        f"{rounds} rounds x {per_round} requests per side after {warmup} warm-up requests each, "
        "concurrency 1, one keep-alive connection; all sides interleaved round by round. "
        "Judged with http.client, the leanest client, so the hop's share is not diluted; "
        "the requests.Session line shows the same comparison with a heavier client. "
        "The raw floor echoes the bytes of a real ping frame through a REP socket in a "
        "separate process (bench/echo.py)."
    )
    return outcome
