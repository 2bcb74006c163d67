"""The hub: one tail of the event log per process, fanned out to every client.

The tail reads the store (``worker.webhook_events``) after its cursor when web's
wake-up arrives (``live.notify``) or every ``LIVE_POLL_INTERVAL_S`` otherwise, and
offers each new event, in id order, to the clients filed under the event's keys
(``live.audience``). The store stays the source: live keeps no state that a restart
could lose, and a client resumes from its last id.

Joining is where order could break, so it has two phases. First the client catches up
on its own, paced by how fast it takes events: from the recent-event cache when it
still holds everything after the client's id, from the store otherwise. Then, under
the lock the tail holds while it fans out, the last few cached events are offered and
the client is filed under its keys: from then on the tail offers it everything newer.
``Client.last_id`` drops anything offered twice, so a race can only repeat nothing.

Backpressure: an offer never waits for a client. A client whose queue holds
``client_buffer_events`` untaken events is disconnected with ``SLOW_CONSUMER``; it
reconnects and resumes from the last id it really received.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import json
import logging
import struct
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from engineio import packet as eio_packet
from socketio import packet as sio_packet

from live.audience import PUBLIC_EVENT, Audience, event_keys, public_message
from live_events.codes import UNAUTHORIZED
from live_events.wire_format import WEBHOOK_EVENT, alias_event, format_sse
from store import webhook_events
from store.database import Store

log = logging.getLogger(__name__)

TAIL_BATCH = 500
CACHE_EVENTS = 5000
SLOW_CONSUMER = "SLOW_CONSUMER"
PACE_S = 0.01  # how often a catching-up client's buffer is looked at
CATCH_UP_TIMEOUT_S = 60.0  # a client that takes nothing for this long while catching up is dropped
DROP_GRACE_S = 10.0  # a dropped direct client gets this long to read its buffer, then it is cut
# Why live ended a connection, as clients are told (``patreon:disconnect``).
DISCONNECT_MESSAGES = {
    SLOW_CONSUMER: "The client fell behind; it reconnects and resumes from its last event id",
    "SHUTTING_DOWN": "The live program is restarting; reconnect to resume from the last event id",
    UNAUTHORIZED: "The session ended (logout or expiry)",
    "DELIVERY_FAILED": "An event could not be delivered; reconnect to resume from the last event id",
}


def disconnect_message(reason: str) -> dict[str, str]:
    return {"code": reason, "message": DISCONNECT_MESSAGES.get(reason, reason)}


def websocket_frame(text: str) -> bytes:
    """One final, unmasked text frame (RFC 6455 5.2)."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x81, size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x81, 126, size)
    else:
        head = struct.pack("!BBQ", 0x81, 127, size)
    return head + payload


def direct_writer(send: Callable) -> Any:
    """uvicorn's object behind an ASGI ``send`` (an HTTP request cycle or a WebSocket
    protocol) if its ``transport`` can be written to directly and tells its buffer size;
    None otherwise (another server, or a wrapped ``send``): then events take the ASGI path."""
    writer = getattr(send, "__self__", None)
    transport = getattr(writer, "transport", None)
    return writer if transport is not None and hasattr(transport, "get_write_buffer_size") else None


def has_room(transport: asyncio.WriteTransport, data: bytes, limit_events: int) -> bool:
    """Whether a direct client's transport holds at most ``limit_events`` events of this
    size: its buffer is the transport's (see ``Client.offer_now``)."""
    return transport.get_write_buffer_size() <= limit_events * len(data)


async def wait_for_room(transport: asyncio.WriteTransport, data: bytes, limit_events: int) -> bool:
    """Catching up on a direct transport: wait until it holds at most half the limit.
    False: it took in nothing for ``CATCH_UP_TIMEOUT_S`` (a slow consumer)."""
    waited = 0.0
    while not has_room(transport, data, limit_events // 2) and not transport.is_closing():
        if waited >= CATCH_UP_TIMEOUT_S:
            return False
        await asyncio.sleep(PACE_S)
        waited += PACE_S
    return True


def http_chunk(data: bytes) -> bytes:
    """One chunk of an HTTP/1.1 chunked body (RFC 9112 7.1), as uvicorn frames its own."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class Frames:
    """One event, encoded once for every client that gets it."""

    def __init__(self, event: webhook_events.StoredEvent):
        self.event = event
        self._sse: bytes | None = None
        self._sio: list[eio_packet.Packet] | None = None
        self._public_sse: bytes | None = None
        self._public_sio: list[eio_packet.Packet] | None = None
        self._ws: dict[bool, bytes] = {}
        self._sse_chunk: dict[bool, bytes] = {}

    @staticmethod
    def _sio_packets(names: list[str], message: dict[str, Any]) -> list[eio_packet.Packet]:
        return [
            eio_packet.Packet(
                eio_packet.MESSAGE, sio_packet.Packet(sio_packet.EVENT, namespace="/", data=[name, message]).encode()
            )
            for name in names
        ]

    def sse(self, public: bool = False) -> bytes:
        if public:
            if self._public_sse is None:
                data = json.dumps(public_message(self.event), separators=(",", ":"), ensure_ascii=True)
                self._public_sse = f"id: {self.event.id}\nevent: {PUBLIC_EVENT}\ndata: {data}\n\n".encode()
            return self._public_sse
        if self._sse is None:
            self._sse = format_sse(self.event)
        return self._sse

    def sse_chunk(self, public: bool = False) -> bytes:
        """``sse`` as one chunk of a chunked response: what a direct SSE stream is written."""
        if public not in self._sse_chunk:
            self._sse_chunk[public] = http_chunk(self.sse(public))
        return self._sse_chunk[public]

    def websocket(self, public: bool = False) -> bytes:
        """The same packets as ``sio``, as the bytes of their WebSocket frames: a server's
        frames are unmasked, so every direct WebSocket client gets these very bytes."""
        if public not in self._ws:
            self._ws[public] = b"".join(websocket_frame(p.encode()) for p in self.sio(public))
        return self._ws[public]

    def sio(self, public: bool = False) -> list[eio_packet.Packet]:
        if public:
            if self._public_sio is None:
                self._public_sio = self._sio_packets([PUBLIC_EVENT], public_message(self.event))
            return self._public_sio
        if self._sio is None:
            alias = alias_event(self.event.event)
            names = [WEBHOOK_EVENT] + ([alias] if alias else [])
            self._sio = self._sio_packets(names, self.event.message())
        return self._sio


class Client:
    """One subscriber: an SSE stream or a Socket.IO connection (``live.sse``, ``live.sio``)."""

    kind = "client"
    limit: int  # the events its buffer holds (set by each kind)

    def __init__(self, audience: Audience):
        self.audience = audience
        self.last_id = 0
        self.closed = False
        self.reason: str | None = None

    @property
    def public(self) -> bool:
        return self.audience.kind == "public"

    def offer_now(self, frames: Frames) -> bool:
        """The fan-out's fast lane: deliver without a coroutine when that is all it takes.
        False: the caller awaits ``offer`` instead.

        A direct client (WebSocket or SSE, once its response has begun) is written each
        event's prebuilt bytes straight to its transport here, in the fan-out's own loop
        turn: 10,000 clients cost 10,000 writes, no task or queue each. Its buffer is
        the transport's: past its limit of events of the current size it is dropped."""
        return False

    async def _write_direct(self, transport: asyncio.WriteTransport, data: bytes, event_id: int, *, wait: bool) -> None:
        """One event's bytes to a direct client's transport, whose buffer is the bound
        (``limit`` events of this size): while catching up (``wait``) it waits for room;
        otherwise a full buffer drops the client."""
        if wait:
            if not await wait_for_room(transport, data, self.limit):
                await self.drop(SLOW_CONSUMER)
                return
            if self.closed or transport.is_closing():
                return
        elif not has_room(transport, data, self.limit):
            await self.drop(SLOW_CONSUMER)
            return
        self.last_id = event_id
        transport.write(data)

    async def offer(self, frames: Frames, *, wait: bool) -> None:
        """Queue one event. ``wait``: while catching up, wait for room; otherwise a full
        queue disconnects the client (``drop``)."""
        raise NotImplementedError

    async def drop(self, reason: str) -> None:
        raise NotImplementedError


class Hub:
    def __init__(
        self,
        store: Store,
        *,
        public_feed: bool,
        cache_events: int = CACHE_EVENTS,
        on_event: Callable[[webhook_events.StoredEvent], None] | None = None,
    ):
        self._store = store
        self.public_feed = public_feed
        self._db = ThreadPoolExecutor(1, thread_name_prefix="live-store")
        self.cursor = 0
        self._cache: collections.deque[Frames] = collections.deque(maxlen=cache_events)
        self._cache_ids: collections.deque[int] = collections.deque(maxlen=cache_events)
        self._cache_floor = 0  # the cache holds every event with cache_floor < id <= cursor
        self._index: dict[str, set[Client]] = collections.defaultdict(set)
        self._lock = asyncio.Lock()
        self.clients: set[Client] = set()
        self._on_event = on_event

    # -- the store, off the event loop -------------------------------------------------
    async def db(self, fn: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db, fn, *args)

    async def latest_id(self) -> int:
        return await self.db(webhook_events.latest_id, self._store)

    async def start(self) -> None:
        self.cursor = self._cache_floor = await self.latest_id()

    def close(self) -> None:
        self._db.shutdown(wait=False, cancel_futures=True)

    # -- the tail ------------------------------------------------------------------------
    async def run(self, wait_for_wakeup: Callable[[float], Any], poll_interval_s: float) -> None:
        while True:
            try:
                await self.tail_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live tail: store error, retrying")
            try:
                await wait_for_wakeup(poll_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception:  # a broken wake-up socket: the poll alone still delivers
                log.exception("live tail: wake-up failed; polling")
                await asyncio.sleep(poll_interval_s)

    async def tail_once(self) -> None:
        while True:
            events = await self.db(webhook_events.since, self._store, self.cursor, TAIL_BATCH)
            async with self._lock:
                for event in events:
                    if event.id <= self.cursor:
                        continue
                    frames = Frames(event)
                    if len(self._cache) == self._cache.maxlen:
                        self._cache_floor = self._cache_ids[0]
                    self._cache.append(frames)
                    self._cache_ids.append(event.id)
                    self.cursor = event.id
                    await self._fan_out(frames)
                    if self._on_event is not None:
                        self._on_event(event)
            if len(events) < TAIL_BATCH:
                return

    async def _fan_out(self, frames: Frames) -> None:
        for key in event_keys(frames.event, public_feed=self.public_feed):
            clients = self._index.get(key)
            if clients:
                for client in list(clients):  # a drop during the loop changes the set
                    try:
                        if not client.offer_now(frames):
                            await client.offer(frames, wait=False)
                    except Exception:
                        # One broken client must not cost the rest this event: it goes
                        # (and, reconnecting, resumes from its own last id).
                        log.exception("live: delivering to a %s client failed; it is let go", client.kind)
                        try:
                            await client.drop("DELIVERY_FAILED")
                        finally:
                            self.leave(client)

    # -- joining and leaving ----------------------------------------------------------------
    def _cached_after(self, after: int) -> list[Frames]:
        start = bisect.bisect_right(self._cache_ids, after)
        return list(self._cache)[start:] if start < len(self._cache) else []

    def _cached_count_after(self, after: int) -> int:
        return len(self._cache_ids) - bisect.bisect_right(self._cache_ids, after)

    async def _events_after(self, after: int) -> list[Frames]:
        if after >= self._cache_floor:
            return self._cached_after(after)[:TAIL_BATCH]
        events = await self.db(webhook_events.since, self._store, after, TAIL_BATCH)
        return [Frames(e) for e in events]

    async def join(self, client: Client, after: int, *, settle_events: int) -> bool:
        """Replay what ``client`` missed after ``after``, then file it; False if it went away.

        ``settle_events``: at most this many events are left for the locked last step,
        which offers without waiting (so they must fit the client's buffer)."""
        while not client.closed:
            # Phase 1, paced by the client, outside the lock: the tail keeps running.
            while not client.closed and (
                after < self._cache_floor or self._cached_count_after(after) > settle_events
            ):
                batch = await self._events_after(after)
                if not batch:
                    break
                for frames in batch:
                    if client.audience.wants(frames.event):
                        await client.offer(frames, wait=True)
                    after = max(after, frames.event.id)
            if client.closed:
                return False
            # Phase 2: the last few, and filing, with the tail held.
            async with self._lock:
                if after < self._cache_floor:
                    continue  # the cache moved past us while we waited for the lock
                for frames in self._cached_after(after):
                    if client.audience.wants(frames.event):
                        await client.offer(frames, wait=False)
                if client.closed:
                    return False
                for key in client.audience.keys():
                    self._index[key].add(client)
                self.clients.add(client)
                return True
        return False

    def leave(self, client: Client) -> None:
        client.closed = True
        for key in client.audience.keys():
            members = self._index.get(key)
            if members is not None:
                members.discard(client)
                if not members:
                    del self._index[key]
        self.clients.discard(client)
