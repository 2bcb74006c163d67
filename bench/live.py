"""Benchmark 6, live delivery: a webhook accepted -> received by 50 SSE clients.

50 clients hold the live program's ``GET /api/patreon/events`` streams open (server
key; one thread and one connection each: web serves no streams). Signed deliveries are then posted one at a time; for each, the
time from the moment the POST is sent until each client reads the event's ``id:``
line is one sample (so it includes the intake itself). Deliveries are spaced by a
random pause so they land at every phase of the streams' store polling.

Goal: p99 under 250 ms, with every client receiving every event.
"""

from __future__ import annotations

import http.client
import random
import socket
import threading
import time

from bench.client import HttpClient
from bench.deliveries import RECEIVER_PATH, Deliveries
from bench.measure import Summary
from bench.report import Line, Outcome, fmt_ms
from bench.stacks import Run
from harness.stack import wait_for

NUMBER = 6
KEY = "live"
TITLE = "Live delivery (SSE)"
GOAL = "webhook accepted -> received by 50 concurrent SSE clients: p99 under 250 ms"

GOAL_P99_MS = 250.0
CLIENTS = 50
EVENTS_PATH = "/api/patreon/events"
STREAM_READ_TIMEOUT_S = 30.0  # above the server's 15 s keep-alive comments
SUBSCRIBE_TIMEOUT_S = 30.0
DELIVERY_TIMEOUT_S = 5.0  # an event not at every client by then counts as lost
MAX_PAUSE_S = 0.15  # above the server's 0.1 s poll interval, to sample every phase
JOIN_TIMEOUT_S = 10.0  # for all 50 reader threads together, once their sockets are shut


class Arrivals:
    """event id -> {client index: perf_counter at arrival}, with a condition to wait on."""

    def __init__(self):
        self.cond = threading.Condition()
        self.by_event: dict[int, dict[int, float]] = {}

    def record(self, event_id: int, client: int, at: float) -> None:
        with self.cond:
            self.by_event.setdefault(event_id, {}).setdefault(client, at)
            self.cond.notify_all()

    def wait_all(self, event_id: int, count: int, timeout_s: float) -> dict[int, float]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.by_event.get(event_id, {})) >= count, timeout_s)
            return dict(self.by_event.get(event_id, {}))


class Listener(threading.Thread):
    """One SSE client: reads lines, notes when each ``id:`` arrives."""

    def __init__(self, index: int, ctx: Run, arrivals: Arrivals):
        super().__init__(name=f"sse-{index}", daemon=True)
        self.index = index
        self.ctx = ctx
        self.arrivals = arrivals
        self.subscribed = threading.Event()
        self.status: int | None = None
        self.error: str | None = None
        self._conn = http.client.HTTPConnection("127.0.0.1", ctx.stack.live_port, timeout=STREAM_READ_TIMEOUT_S)
        self._closing = False
        self._sock: socket.socket | None = None

    def run(self) -> None:
        try:
            self._conn.request(
                "GET",
                EVENTS_PATH,
                headers={"Authorization": f"Bearer {self.ctx.api_key}", "Accept": "text/event-stream"},
            )
            # Kept here: http.client forgets the socket once a response says it will close.
            self._sock = self._conn.sock
            resp = self._conn.getresponse()
            self.status = resp.status
            if resp.status != 200:
                self.error = f"{resp.status}: {resp.read(300)!r}"
                self.subscribed.set()
                return
            while True:
                line = resp.readline()
                if not line:
                    return
                if line.startswith(b": subscribed"):
                    self.subscribed.set()
                elif line.startswith(b"id:"):
                    self.arrivals.record(int(line[3:].strip()), self.index, time.perf_counter())
        except (OSError, http.client.HTTPException, ValueError) as ex:
            if not self._closing:
                self.error = f"{type(ex).__name__}: {ex}"
        finally:
            self.subscribed.set()

    def close(self) -> None:
        self._closing = True
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._conn.close()


def run(ctx: Run) -> Outcome:
    outcome = Outcome(NUMBER, KEY, TITLE, GOAL)
    ctx.stack.wait_live()  # the streams are the live program's

    events = ctx.scale(40, 8)
    warmup = ctx.scale(3, 1)
    arrivals = Arrivals()
    listeners = [Listener(i, ctx, arrivals) for i in range(CLIENTS)]
    sender = HttpClient(ctx.stack.base_url)
    deliveries = Deliveries(ctx.webhook_secret, f"live-{random.getrandbits(32):08x}")
    pace = random.Random(6)
    samples_ms: list[float] = []
    last_client_ms: list[float] = []
    accept_ms: list[float] = []
    lost = 0
    try:
        for listener in listeners:
            listener.start()
        wait_for(
            lambda: all(listener.subscribed.is_set() for listener in listeners),
            SUBSCRIBE_TIMEOUT_S,
            what=f"{CLIENTS} SSE clients to subscribe",
        )
        refused = [listener for listener in listeners if listener.error]
        if refused:
            outcome.add(
                Line(
                    f"{CLIENTS} SSE clients",
                    goal=f"p99 < {GOAL_P99_MS:.0f} ms",
                    unavailable=f"{len(refused)} of {CLIENTS} streams refused: {refused[0].error}",
                )
            )
            return outcome
        for n in range(warmup + events):
            time.sleep(pace.uniform(0, MAX_PAUSE_S))  # pacing on purpose, not a wait for a condition
            body, headers = deliveries.next()
            sent = time.perf_counter()
            reply = sender.post(RECEIVER_PATH, body, headers=headers, expect=200)
            accepted = time.perf_counter()
            event_id = int(reply.json()["id"])
            got = arrivals.wait_all(event_id, CLIENTS, DELIVERY_TIMEOUT_S)
            if n < warmup:
                continue
            accept_ms.append((accepted - sent) * 1000)
            lost += CLIENTS - len(got)
            times = [(at - sent) * 1000 for at in got.values()]
            samples_ms.extend(times)
            if len(got) == CLIENTS:
                last_client_ms.append(max(times))
    finally:
        for listener in listeners:
            listener.close()
        sender.close()
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        for listener in listeners:
            listener.join(max(0.0, deadline - time.monotonic()))

    broken = [listener.error for listener in listeners if listener.error]
    summary = Summary.of(samples_ms)
    outcome.add(
        Line(
            f"send -> received, {CLIENTS} clients x {events} events, p50/p99",
            fmt_ms(summary) + (f"; {lost} deliveries lost" if lost else ""),
            goal=f"p99 < {GOAL_P99_MS:.0f} ms, none lost",
            met=summary.p99 < GOAL_P99_MS and lost == 0 and not broken,
        ),
        Line(
            "send -> the last of the 50 has it, p50/p99",
            fmt_ms(Summary.of(last_client_ms)) if last_client_ms else "never",
        ),
        Line("intake (POST -> 200), p50/p99", fmt_ms(Summary.of(accept_ms))),
    )
    if broken:
        outcome.notes.append(f"Streams broken during the run: {len(broken)} ({broken[0]}).")
    outcome.notes.append(
        f"{CLIENTS} streams (server key in the Authorization header), {warmup} warm-up events, "
        f"then {events} signed deliveries one at a time, each after a random 0-{MAX_PAUSE_S * 1000:.0f} ms "
        "pause. The 50 clients are threads of the benchmark process on the same 2 cores: their "
        "own wake-ups are part of the figure."
    )
    return outcome
