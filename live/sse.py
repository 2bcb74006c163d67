"""``GET /api/patreon/events`` on live: Server-Sent Events.

The frames of ``live_events.wire_format.format_sse`` (``id:`` = the event's id,
``event: patreon:webhook``), the cursor rules (``Last-Event-ID`` over ``?since=``, neither:
from now), the same server key and creator session; plus ``?token=`` (a subscribe
token, ``live_events.tokens``) for patrons and other sites, with CORS for
``LIVE_CORS_ORIGINS``. The public feed's events are ``event: patreon:public``.

A stream is a bounded queue (``LIVE_CLIENT_BUFFER_EVENTS``). A client that lets it
fill gets ``event: patreon:disconnect`` with ``{"code": "SLOW_CONSUMER"}`` and the
stream ends; EventSource reconnects with the last id it received and catches up.
"""

from __future__ import annotations

import asyncio
import json
import logging

from live.audience import Audience
from live.hub import SLOW_CONSUMER, Client, Frames, Hub, disconnect_message

log = logging.getLogger(__name__)

KEEPALIVE_INTERVAL_S = 15.0
STREAM_MAX_LIFETIME_S = 3600.0
RECONNECT_DELAY_MS = 1000
EVENTS_PATH = "/api/patreon/events"
PACE_S = 0.01  # how often a catching-up client's queue is looked at


class Chunk:
    """Bytes Falcon's SSE loop sends as they are (it calls ``serialize``)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def serialize(self, _handler=None) -> bytes:
        return self.data


KEEPALIVE = Chunk(b": keep-alive\n\n")
_END = None


class SseClient(Client):
    kind = "sse"

    def __init__(self, audience: Audience, buffer_events: int, hub: Hub):
        super().__init__(audience)
        # Unbounded as a queue, bounded by ``offer``: the end of a stream always fits.
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.limit = buffer_events
        self._hub = hub

    async def offer(self, frames: Frames, *, wait: bool) -> None:
        event_id = frames.event.id
        if self.closed or event_id <= self.last_id:
            return
        data = frames.sse(self.public)
        if wait:
            while self.queue.qsize() >= self.limit and not self.closed:
                await asyncio.sleep(PACE_S)
            if self.closed:
                return
        elif self.queue.qsize() >= self.limit:
            await self.drop(SLOW_CONSUMER)
            return
        self.queue.put_nowait(data)
        self.last_id = event_id

    async def drop(self, reason: str) -> None:
        if self.closed:
            return
        self._hub.leave(self)
        self.reason = reason
        # What it had not taken is dropped: it resumes from its own last id.
        while not self.queue.empty():
            self.queue.get_nowait()
        body = json.dumps(disconnect_message(reason))
        self.queue.put_nowait(f"event: patreon:disconnect\ndata: {body}\n\n".encode())
        self.queue.put_nowait(_END)

    def gone(self) -> None:
        """The client went away: the stream ends now (and frees its place)."""
        self._hub.leave(self)
        self.queue.put_nowait(_END)

    async def chunks(self, after: int):
        """The response body: the hello, then events, until dropped, stopped or too old."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        yield Chunk(f"retry: {RECONNECT_DELAY_MS}\n: subscribed after {after}\n\n".encode())
        joining = asyncio.create_task(self._hub.join(self, after, settle_events=self.limit // 2))
        try:
            while loop.time() - started < STREAM_MAX_LIFETIME_S:
                try:
                    data = await asyncio.wait_for(self.queue.get(), KEEPALIVE_INTERVAL_S)
                except TimeoutError:
                    yield KEEPALIVE
                    continue
                if data is _END:
                    return
                yield Chunk(data)
        finally:
            joining.cancel()
            self._hub.leave(self)
