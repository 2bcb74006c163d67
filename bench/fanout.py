"""Benchmark 9, live fan-out: 10,000 subscribers of the live program, one webhook to all.

On a stack of its own (``python -m live`` under the real supervisord), the benchmark
process opens N subscribers (full run 10,000, ``--quick`` 1,000) on loopback: 90%
Socket.IO over WebSocket, 5% SSE, 5% Socket.IO long-polling. All but the patrons hold
a ``creator`` subscribe token for campaign 1001; 100 hold ``patron`` tokens, one user
each. Then:

* broadcast: signed deliveries for campaign 1001, one at a time; for each, the time
  from sending the POST until each subscriber has the event (and until the last one
  has it). Goal: last client p99 under 250 ms, none lost.
* targeted: a delivery about one patron (in another campaign, so only that patron's
  token hears it). Goal: p99 under 50 ms.
* live's RSS per 1,000 connections: (RSS with N connected - RSS idle) / (N / 1000).
* web's ``GET /api/patreon/status`` p50/p99 while the broadcasts run, against the same
  with no subscribers (A/B on the same stack), sampled 50 times a second as a monitor
  would: back to back, the probe and web's answers took most of a core from the stack
  under test (one run each: the last client's p50 500 ms with it, 384 ms paced).

The subscribers behave like a site's pages: one whose connection ends (live drops a
slow consumer, engine.io times a poll out) reconnects after a random 0.05-1 s and
resumes from the last id it received (``auth.since``; ``Last-Event-ID`` for SSE), so
"lost" means an event a subscriber never got, and "twice" one it got again. Arrival
times are the first arrival, however late. The subscribers run on one asyncio loop in
this process, on the same 2 cores as the stack: their own frame parsing is part of
every figure. The WebSocket and long-polling clients here are
lean ones (they read only the event id of an event packet), on uvloop, so that they
measure live rather than themselves; tests.live_clients holds the full ones. Bounded: N connections,
a fixed number of deliveries, every wait with a deadline.

Two environment variables change the stack for a comparison run (the report names
what ran): ``BENCH_LIVE_GC_THRESHOLDS`` sets live's ``LIVE_GC_THRESHOLDS``, and
``BENCH_LIVE_PROCESSES=N`` runs N live processes, each subscriber keeping to one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import resource
import struct
import threading
import time

import requests
import uvloop

from bench.client import HttpClient
from bench.deliveries import Deliveries
from bench.machine import CpuAccount, rss_kib
from bench.measure import Summary
from bench.report import Line, Outcome, compare_ms, fmt_ms
from bench.stacks import new_secrets, supervised_pids
from harness.stack import Stack, wait_for
from tests.live_clients import PollingSubscriber
from tests.webhook_deliveries import PATH, encode, member_document, signed_headers

NUMBER = 9  # bench/__main__.py: 8 is access checks
KEY = "fanout"
TITLE = "Live fan-out (live program)"
GOAL = "10,000 subscribers: one webhook to all, last client p99 < 250 ms, none lost; one patron p99 < 50 ms"

GOAL_BROADCAST_P99_MS = 250.0
GOAL_TARGETED_P99_MS = 50.0
PATRONS = 100
SSE_SHARE = 0.05
POLLING_SHARE = 0.05
CONNECT_BATCH = 250
CONNECT_TIMEOUT_S = 240.0
DELIVERY_TIMEOUT_S = 10.0
RECONNECT_DELAY_S = (0.05, 1.0)
SETTLE_S = 15.0  # after the last webhook: time for reconnecting subscribers to catch up
STATUS_SAMPLES_IDLE = 300
STATUS_INTERVAL_S = 0.02
_EVENT_ID = re.compile(rb'42\["patreon:webhook",\{"id":(\d+)')
_SSE_ID = re.compile(rb"id: (\d+)\nevent: patreon:webhook\n")
_EVENT_TEXT = '42["patreon:'
_DISCONNECT_TEXT = '42["patreon:disconnect"'
_EVENT_ID_TEXT = re.compile(r'^42\["patreon:webhook",\{"id":(\d+)')


class Arrivals:
    """event id -> first arrival times (perf_counter), written from the client loop."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_event: dict[int, list[float]] = {}
        self.receivers: dict[int, list[int]] = {}  # event id -> the clients, in by_event's order
        self.by_client: dict[int, set[int]] = {}
        self.last: dict[int, int] = {}  # client -> the last id it received: where it resumes
        self.twice = 0  # events a client received again (after a reconnect): must stay 0
        self.reconnects: dict[str, int] = {}  # by kind

    def record(self, client: int, event_id: int) -> None:
        now = time.perf_counter()
        with self.lock:
            seen = self.by_client.setdefault(client, set())
            if event_id in seen:
                self.twice += 1
                return
            seen.add(event_id)
            self.by_event.setdefault(event_id, []).append(now)
            self.receivers.setdefault(event_id, []).append(client)
            if event_id > self.last.get(client, 0):
                self.last[client] = event_id

    def count(self, event_id: int) -> int:
        with self.lock:
            return len(self.by_event.get(event_id, ()))


class LeanWebSocket(asyncio.Protocol):
    """Socket.IO over WebSocket, reading only what it must: pings and event ids."""

    def __init__(self, index: int, host: str, port: int, auth_json: str, arrivals: Arrivals, on_lost=None):
        self.index = index
        self.host, self.port = host, port
        self.auth_json = auth_json
        self.arrivals = arrivals
        self.on_lost = on_lost
        self.connected = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._handshaken = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        transport.write(
            (
                f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )

    def _send(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        length = len(payload)
        head = struct.pack("!BB", 0x81, 0x80 | length) if length < 126 else struct.pack("!BBH", 0x81, 0xFE, length)
        self.transport.write(head + mask + masked)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        if not self._handshaken:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self._buffer = buffer
                return
            if not buffer.startswith(b"HTTP/1.1 101"):
                self._fail(buffer[:12].decode(errors="replace"))
                return
            self._handshaken = True
            buffer = buffer[end + 4 :]
        # Frames are read in place (an event's ~3 KiB payload is matched, never copied):
        # the subscribers share the cores with live, so their cost is part of every figure.
        pos, size = 0, len(buffer)
        while size - pos >= 2:
            length = buffer[pos + 1] & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                length = struct.unpack_from("!H", buffer, pos + 2)[0]
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = struct.unpack_from("!Q", buffer, pos + 2)[0]
                header = 10
            if size - pos < header + length:
                break
            opcode = buffer[pos] & 0x0F
            start = pos + header
            pos = start + length
            if opcode == 0x1:
                match = _EVENT_ID.match(buffer, start, pos)
                if match:
                    self.arrivals.record(self.index, int(match.group(1)))
                elif buffer[start : start + 2] != b"42":  # an alias event needs nothing
                    self._packet(buffer[start:pos])
            elif opcode == 0x8:
                self._fail("closed")
        self._buffer = buffer[pos:] if pos < size else b""

    def _packet(self, payload: bytes) -> None:
        if payload[:1] == b"2":
            self._send("3")
        elif payload[:1] == b"0":
            self._send("40" + self.auth_json)
        elif payload[:2] == b"40":
            if not self.connected.done():
                self.connected.set_result(True)
        elif payload[:2] == b"44":
            self._fail(payload[:80].decode(errors="replace"))

    def _fail(self, why: str) -> None:
        if not self.connected.done():
            self.connected.set_exception(ConnectionError(why))

    def connection_lost(self, exc) -> None:
        self._fail("connection lost")
        if self.on_lost is not None:
            self.on_lost()


class LeanSse(asyncio.Protocol):
    def __init__(
        self, index: int, host: str, port: int, token: str, arrivals: Arrivals, on_lost=None, last_id=None
    ):
        self.index = index
        self.host, self.port, self.token = host, port, token
        self.arrivals = arrivals
        self.on_lost = on_lost
        self.last_id = last_id
        self.connected = asyncio.get_running_loop().create_future()
        self._tail = b""

    def connection_made(self, transport) -> None:
        resume = f"Last-Event-ID: {self.last_id}\r\n" if self.last_id is not None else ""
        transport.write(
            f"GET /api/patreon/events?token={self.token} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"{resume}\r\n".encode()
        )

    def data_received(self, data: bytes) -> None:
        text = self._tail + data
        if not self.connected.done():
            if b": subscribed" in text:
                self.connected.set_result(True)
            elif text.startswith(b"HTTP/1.1") and not text.startswith(b"HTTP/1.1 200"):
                self.connected.set_exception(ConnectionError(text[:12].decode(errors="replace")))
        for match in _SSE_ID.finditer(text):
            self.arrivals.record(self.index, int(match.group(1)))
        # Keep the end in case an id line is split; an id seen in it is not in the next match.
        cut = text.rfind(b"\n\n")
        self._tail = text[cut + 2 :] if cut >= 0 else text[-200:]

    def connection_lost(self, exc) -> None:
        if not self.connected.done():
            self.connected.set_exception(ConnectionError("connection lost"))
        if self.on_lost is not None:
            self.on_lost()


class LeanPolling(PollingSubscriber):
    """tests.live_clients' long-polling client, reading only the id of an event packet,
    as ``LeanWebSocket`` does: parsing each ~3 KiB event and its alias as JSON made
    these 5% of the subscribers a large share of the crowd's CPU."""

    def _on_packet(self, text: str, send) -> bool:
        if text.startswith(_EVENT_TEXT) and not text.startswith(_DISCONNECT_TEXT):
            match = _EVENT_ID_TEXT.match(text)
            if match:  # an alias (patreon:member:*) is skipped: the webhook's id counts
                self._heard_webhook(int(match.group(1)))
            return True
        return super()._on_packet(text, send)


class Crowd:
    """Every subscriber, on one asyncio loop in a thread of its own."""

    def __init__(self, stack: Stack, creator_token: str, patron_tokens: dict[str, str], total: int):
        self.stack = stack
        self.arrivals = Arrivals()
        self.creator_token = creator_token
        self.patron_tokens = patron_tokens
        self.total = total
        self.patron_client: dict[str, int] = {}  # user id -> client index
        self.kinds: dict[int, str] = {}
        self.loop = uvloop.new_event_loop()  # live's own loop: the crowd's share of the 2 cores is smaller
        self.thread = threading.Thread(target=self.loop.run_forever, name="crowd", daemon=True)
        self.transports: list = []
        self.pollers: list[LeanPolling] = []
        self.pollers_by_index: dict[int, LeanPolling] = {}
        self.closing = False
        self.tasks: set[asyncio.Task] = set()

    def run(self, coro, timeout_s: float):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def _lost(self, index: int, kind: str, token: str) -> None:
        """A connection ended: reconnect, as a page does, and resume from the last id."""
        if self.closing:
            return
        with self.arrivals.lock:
            self.arrivals.reconnects[kind] = self.arrivals.reconnects.get(kind, 0) + 1
        delay = random.uniform(*RECONNECT_DELAY_S)
        self.loop.call_later(delay, self._reopen, index, kind, token)

    def _reopen(self, index: int, kind: str, token: str) -> None:
        async def reopen() -> None:
            try:
                await self._open_one(index, kind, token, resume=True)
            except OSError:
                self._lost(index, kind, token)  # refused before a connection: try again
            except (ConnectionError, TimeoutError):
                pass  # its connection_lost schedules the next try

        if not self.closing:
            task = self.loop.create_task(reopen())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _open_one(self, index: int, kind: str, token: str, resume: bool = False) -> None:
        # With several live processes (LIVE_PROCESSES), each client keeps to one: sticky, as
        # nginx's ip_hash upstream makes it for browsers.
        host, port = "127.0.0.1", self.stack.live_port + index % self.stack.lives
        loop = asyncio.get_running_loop()
        last_id = self.arrivals.last.get(index) if resume else None
        if kind == "polling":

            def on_event(_sub, event_id, _at, index=index):
                self.arrivals.record(index, event_id)

            # tests.live_clients reconnects on its own, with auth.since = its last id.
            sub = LeanPolling(host, port, {"token": token}, on_event=on_event, reconnect=True).start()
            self.pollers.append(sub)
            self.pollers_by_index[index] = sub
            await asyncio.wait_for(sub.connected.wait(), 60)
            return
        on_lost = lambda: self._lost(index, kind, token)  # noqa: E731
        if kind == "sse":
            protocol_factory = lambda: LeanSse(index, host, port, token, self.arrivals, on_lost, last_id)  # noqa: E731
        else:
            auth = json.dumps({"token": token, **({"since": last_id} if last_id is not None else {})})
            protocol_factory = lambda: LeanWebSocket(index, host, port, auth, self.arrivals, on_lost)  # noqa: E731
        transport, protocol = await loop.create_connection(protocol_factory, host, port)
        self.transports.append(transport)
        await asyncio.wait_for(protocol.connected, 60)

    async def open_all(self) -> None:
        plan = []
        patrons = list(self.patron_tokens.items())
        for index in range(self.total):
            if index < len(patrons):
                user_id, token = patrons[index]
                self.patron_client[user_id] = index
                plan.append((index, "websocket", token))
                continue
            roll = index % 100
            kind = "sse" if roll < SSE_SHARE * 100 else "polling" if roll < (SSE_SHARE + POLLING_SHARE) * 100 else "websocket"
            plan.append((index, kind, self.creator_token))
        for index, kind, _ in plan:
            self.kinds[index] = kind
        for start in range(0, len(plan), CONNECT_BATCH):
            await asyncio.gather(*(self._open_one(*item) for item in plan[start : start + CONNECT_BATCH]))

    async def close_all(self) -> None:
        self.closing = True
        for transport in self.transports:
            transport.close()
        for sub in self.pollers:
            await sub.stop()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        try:
            self.run(self.close_all(), 60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


def _status_samples(client: HttpClient, count: int | None, stop: threading.Event | None = None) -> list[float]:
    samples = []
    while (count is None or len(samples) < count) and not (stop is not None and stop.is_set()):
        started = time.perf_counter()
        client.get("/api/patreon/status", expect=200)
        samples.append((time.perf_counter() - started) * 1000)
        time.sleep(max(0.0, STATUS_INTERVAL_S - (time.perf_counter() - started)))
    return samples


def _live_lag_samples(url: str, stop: threading.Event) -> list[float]:
    """Round trips of live's health request, one every 50 ms: it is answered on live's one
    event loop, so its time bounds that loop's lag from above (it also holds a small
    request's cost, and this thread's wait for the GIL and a core against the crowd's)."""
    samples = []
    with requests.Session() as session:
        while not stop.is_set():
            started = time.perf_counter()
            session.get(url, timeout=30)
            samples.append((time.perf_counter() - started) * 1000)
            stop.wait(0.05)
    return samples


def _live_health(stack: Stack, field: str) -> list:
    """One field of each live process's health answer."""
    return [requests.get(url + "/api/patreon/live/health", timeout=10).json().get(field) for url in stack.live_urls]


def run(quick: bool) -> Outcome:
    outcome = Outcome(NUMBER, KEY, TITLE, GOAL)
    total = 1000 if quick else 10_000
    broadcasts = 20
    targeted = 20 if quick else 50
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < total + 2000:
        outcome.add(Line("run", goal="(see goal)", unavailable=f"fd hard limit {hard} is below {total + 2000}"))
        return outcome
    api_key, secret = new_secrets()
    lives = int(os.environ.get("BENCH_LIVE_PROCESSES", "1"))
    stack = Stack(
        {
            "BRIDGE_API_KEY": api_key,
            "PATREON_WEBHOOK_SECRET": secret,
            "LIVE_MAX_CONNECTIONS": str(total + 1000),
            **({"LIVE_GC_THRESHOLDS": os.environ["BENCH_LIVE_GC_THRESHOLDS"]} if "BENCH_LIVE_GC_THRESHOLDS" in os.environ else {}),
        },
        name="bench-live",
        lives=lives,
    )
    crowd: Crowd | None = None
    try:
        stack.start(timeout_s=120)
        stack.wait_live()
        bearer = {"Authorization": f"Bearer {api_key}"}

        def mint(**fields) -> str:
            resp = requests.post(stack.url("/api/patreon/live/tokens"), json=fields, headers=bearer, timeout=10)
            resp.raise_for_status()
            return resp.json()["token"]

        creator_token = mint(audience="creator", campaignIds=["1001"])
        patron_tokens = {f"9{n:04d}": mint(audience="patron", userId=f"9{n:04d}") for n in range(PATRONS)}
        status_client = HttpClient(stack.base_url)
        status_idle = _status_samples(status_client, STATUS_SAMPLES_IDLE)
        live_pids = [pid for name, pid in supervised_pids(stack).items() if name.startswith("live_")]
        rss_idle = sum(rss_kib(pid) or 0 for pid in live_pids)

        crowd = Crowd(stack, creator_token, patron_tokens, total)
        crowd.start()
        started = time.perf_counter()
        crowd.run(crowd.open_all(), CONNECT_TIMEOUT_S)
        connect_s = time.perf_counter() - started
        wait_for(
            lambda: sum(_live_health(stack, "connections")) >= total,
            30,
            what=f"live to count {total} connections",
        )
        time.sleep(2)  # let the last seats settle
        rss_loaded = sum(rss_kib(pid) or 0 for pid in live_pids)

        # Broadcasts, with web's status measured meanwhile.
        stop = threading.Event()
        status_busy: list[float] = []
        prober = threading.Thread(
            target=lambda: status_busy.extend(_status_samples(HttpClient(stack.base_url), None, stop)), daemon=True
        )
        prober.start()
        lag_busy: list[float] = []
        lag_prober = threading.Thread(
            target=lambda: lag_busy.extend(_live_lag_samples(stack.live_url + "/api/patreon/live/health", stop)),
            daemon=True,
        )
        lag_prober.start()
        sender = HttpClient(stack.base_url)
        deliveries = Deliveries(secret, f"fanout-{random.getrandbits(32):08x}")
        expected = total - PATRONS
        all_ms: list[float] = []
        last_ms: list[float] = []
        lost = 0
        pace = random.Random(8)
        sent_at: dict[int, float] = {}
        # CPU of every process while each broadcast is delivered: from its POST until the
        # last subscriber has it (the bench process holds the subscribers and the probes).
        processes = {name: pid for name, pid in supervised_pids(stack).items() if "_" in name or name in ("sandbox", "watchdog")}
        account = CpuAccount({**processes, "subscribers (this process)": os.getpid()})
        delivering_s = 0.0

        def broadcast(raw: bytes, headers: dict) -> tuple[int, float]:
            sent = time.perf_counter()
            event_id = int(sender.post(PATH, raw, headers=headers, expect=200).json()["id"])
            deadline = time.monotonic() + DELIVERY_TIMEOUT_S
            while crowd.arrivals.count(event_id) < expected and time.monotonic() < deadline:
                time.sleep(0.005)
            return event_id, sent

        for round_ in range(broadcasts + 1):  # the first is a warm-up
            time.sleep(pace.uniform(0.5, 1.0))
            raw, headers = deliveries.next()
            if not round_:
                broadcast(raw, headers)
                continue
            started = time.perf_counter()
            event_id, sent = account.measure(lambda raw=raw, headers=headers: broadcast(raw, headers))
            delivering_s += time.perf_counter() - started
            sent_at[event_id] = sent
        stop.set()
        prober.join(30)
        lag_prober.join(30)
        # Subscribers that were dropped reconnect and catch up: give them time, then count.
        settle = time.monotonic() + SETTLE_S
        while time.monotonic() < settle and any(crowd.arrivals.count(e) < expected for e in sent_at):
            time.sleep(0.1)
        last_by_kind_ms: dict[str, list[float]] = {}
        for event_id, sent in sent_at.items():
            with crowd.arrivals.lock:
                times = list(crowd.arrivals.by_event.get(event_id, ()))
                receivers = list(crowd.arrivals.receivers.get(event_id, ()))
            lost += max(0, expected - len(times))
            all_ms.extend((t - sent) * 1000 for t in times)
            if len(times) >= expected:
                last_ms.append((max(times) - sent) * 1000)
                last_of_kind: dict[str, float] = {}
                for at, client in zip(times, receivers, strict=True):
                    kind = crowd.kinds[client]
                    last_of_kind[kind] = max(last_of_kind.get(kind, at), at)
                for kind, at in last_of_kind.items():
                    last_by_kind_ms.setdefault(kind, []).append((at - sent) * 1000)

        # Targeted: one patron each time.
        targeted_ms: list[float] = []
        targeted_lost = 0
        users = list(patron_tokens)
        for n in range(targeted):
            time.sleep(pace.uniform(0.05, 0.2))
            user_id = pace.choice(users)
            raw = encode(member_document(f"fanout-target-{n}-{random.getrandbits(32)}", campaign_id="7777", user_id=user_id))
            sent = time.perf_counter()
            event_id = int(sender.post(PATH, raw, headers=signed_headers(secret, raw, "members:update"), expect=200).json()["id"])
            deadline = time.monotonic() + DELIVERY_TIMEOUT_S
            while crowd.arrivals.count(event_id) < 1 and time.monotonic() < deadline:
                time.sleep(0.001)
            with crowd.arrivals.lock:
                times = list(crowd.arrivals.by_event.get(event_id, ()))
            index = crowd.patron_client[user_id]
            if len(times) != 1 or event_id not in crowd.arrivals.by_client.get(index, set()):
                targeted_lost += 1
                continue
            targeted_ms.append((times[0] - sent) * 1000)
        sender.close()
        gc_pauses = max(_live_health(stack, "gc"), key=lambda pauses: max(pauses["longestPauseMs"]), default=None)

        per_kind = {}
        for kind in ("websocket", "sse", "polling"):
            per_kind[kind] = sum(1 for k in crowd.kinds.values() if k == kind)
        if lost:
            # Who missed what: by kind, as a note (a loss is a result, and its shape helps).
            missed: dict[str, int] = {}
            with crowd.arrivals.lock:
                heard = {index: len(ids) for index, ids in crowd.arrivals.by_client.items()}
            best = max(heard.values(), default=0)
            for index, kind in crowd.kinds.items():
                if index >= PATRONS and heard.get(index, 0) < best:
                    missed[kind] = missed.get(kind, 0) + 1
            health = requests.get(stack.live_url + "/api/patreon/live/health", timeout=5).json()
            outcome.notes.append(
                f"Subscribers that missed events (after reconnecting and {SETTLE_S:.0f} s to catch up), by kind: "
                f"{missed}; live then counted {health}."
            )
            print("\n".join(stack.log_text("live").splitlines()[-30:]))
        with crowd.arrivals.lock:
            reconnects = dict(crowd.arrivals.reconnects)
            twice = crowd.arrivals.twice
        reconnects["polling"] = sum(max(0, p.connects - 1) for p in crowd.pollers)
        twice += sum(p.duplicates for p in crowd.pollers)
        outcome.notes.append(
            f"Reconnects during the run, by kind (each resumed from its last id): {reconnects}; "
            f"events a subscriber received twice: {twice}."
        )
        last = Summary.of(last_ms) if last_ms else None
        outcome.add(
            Line(
                f"one webhook -> the last of {expected} subscribers, p50/p99 ({broadcasts} webhooks)",
                (fmt_ms(last) if last else "never complete") + (f"; {lost} deliveries lost" if lost else "; none lost"),
                goal=f"p99 < {GOAL_BROADCAST_P99_MS:.0f} ms, none lost",
                met=last is not None and last.p99 < GOAL_BROADCAST_P99_MS and lost == 0,
            ),
            Line("one webhook -> each subscriber (every delivery), p50/p99", fmt_ms(Summary.of(all_ms)) if all_ms else "none"),
            Line(
                "one webhook -> the last subscriber of each kind, p50/p99",
                "; ".join(f"{kind} {fmt_ms(Summary.of(ms))}" for kind, ms in sorted(last_by_kind_ms.items())) or "none",
            ),
            Line(
                f"a webhook about one patron among {total} -> that patron, p50/p99 ({targeted} webhooks)",
                (fmt_ms(Summary.of(targeted_ms)) if targeted_ms else "never") + (f"; {targeted_lost} lost" if targeted_lost else ""),
                goal=f"p99 < {GOAL_TARGETED_P99_MS:.0f} ms",
                met=bool(targeted_ms) and Summary.of(targeted_ms).p99 < GOAL_TARGETED_P99_MS and targeted_lost == 0,
            ),
            Line(
                "live RSS per 1,000 connections",
                f"{(rss_loaded - rss_idle) / 1024 / (total / 1000):.1f} MB (idle {rss_idle / 1024:.0f} MB, "
                f"{total} connected {rss_loaded / 1024:.0f} MB)",
            ),
            Line(
                f"live's health round trip under {total} connections during the broadcasts (an upper bound on "
                "live's loop lag), p50/p99/max",
                (
                    f"{Summary.of(lag_busy).p50:.1f} / {Summary.of(lag_busy).p99:.1f} / {max(lag_busy):.1f} ms "
                    f"({len(lag_busy)} samples)"
                )
                if lag_busy
                else "no samples",
            ),
            Line(
                "live's garbage collections over the run (young, middle, full): count; longest pause",
                (
                    f"{' / '.join(str(n) for n in gc_pauses['collections'])}; "
                    f"{' / '.join(f'{ms:.0f}' for ms in gc_pauses['longestPauseMs'])} ms "
                    f"(thresholds {','.join(str(n) for n in gc_pauses['thresholds'])})"
                )
                if gc_pauses
                else "not reported",
            ),
            Line(
                "CPU per broadcast, from its POST to the last arrival, by process (ms); all of them against the "
                "2 cores' time",
                f"{account.per_call_ms(broadcasts)}; together {sum(account.used.values()) * 1000 / broadcasts:.0f} ms "
                f"of CPU in {delivering_s * 1000 / broadcasts:.0f} ms (2 cores: at most "
                f"{2 * delivering_s * 1000 / broadcasts:.0f} ms)",
            ),
            Line(
                "web GET /api/patreon/status (50 a second) during the broadcasts vs with no subscribers",
                compare_ms("idle", Summary.of(status_idle), "during", Summary.of(status_busy)) if status_busy else "no samples",
            ),
        )
        outcome.notes.append(
            f"{total} subscribers: {per_kind['websocket']} Socket.IO over WebSocket (of them {PATRONS} patrons, "
            f"one user each), {per_kind['sse']} SSE, {per_kind['polling']} Socket.IO long-polling; opened in "
            f"{connect_s:.1f} s. Broadcasts are campaign 1001 member updates (~3 KiB) to the {expected} creator-token "
            "subscribers, each after a 0.5-1 s pause; targeted ones are member updates in another campaign about one "
            "patron. Times run from sending the webhook POST (so they include web's intake and the wake-up) to the "
            "subscriber's read, all on loopback; the subscribers share the machine's 2 cores with the stack."
            + (f" {lives} live processes (BENCH_LIVE_PROCESSES), the subscribers spread over them." if lives > 1 else "")
        )
    finally:
        if crowd is not None:
            crowd.stop()
        stack.cleanup()
    return outcome
