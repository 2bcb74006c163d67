"""``GET /api/patreon/events`` on live: Server-Sent Events.

The frames of ``live_events.wire_format.format_sse`` (``id:`` = the event's id,
``event: patreon:webhook``), the cursor rules (``Last-Event-ID`` over ``?since=``, neither:
from now), the same server key and creator session; plus ``?token=`` (a subscribe
token, ``live_events.tokens``) for patrons and other sites, with CORS for
``LIVE_CORS_ORIGINS``. The public feed's events are ``event: patreon:public``.

Two ways out, as for Socket.IO (``live.sio``):

* direct: once the response has begun (its headers and the hello are out through
  uvicorn), events are written to the connection's transport as prebuilt bytes in the
  fan-out's own loop turn (``Frames.sse_chunk``: one chunk of a chunked body; the bare
  frame where the body runs to the close, as h11 sends it to HTTP/1.0). Keep-alives and
  the stream's end still go through Falcon and uvicorn; each is a whole chunk, so the
  two never split one. The transport's buffer is the client's: ``LIVE_CLIENT_BUFFER_EVENTS``
  events of the current size.
* a queue, when no writable transport is known (another ASGI server), of the same bound.

A client that lets its buffer fill gets ``event: patreon:disconnect`` with
``{"code": "SLOW_CONSUMER"}`` after what it was already sent, and the stream ends;
EventSource reconnects with the last id it received and catches up.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from live.audience import Audience
from live.hub import (
    DROP_GRACE_S,
    PACE_S,
    SLOW_CONSUMER,
    Client,
    Frames,
    Hub,
    disconnect_message,
    has_room,
)

log = logging.getLogger(__name__)

KEEPALIVE_INTERVAL_S = 15.0
STREAM_MAX_LIFETIME_S = 3600.0
RECONNECT_DELAY_MS = 1000
EVENTS_PATH = "/api/patreon/events"


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

    def __init__(
        self,
        audience: Audience,
        buffer_events: int,
        hub: Hub,
        writer: Any = None,
        http_version: str = "1.1",
    ):
        """``writer``: uvicorn's request cycle (``live.hub.direct_writer``), whose
        transport events are written to once the response has begun; None: the queue
        only. ``http_version``: the request's, for a server that does not say how it
        framed the body."""
        super().__init__(audience)
        # Unbounded as a queue, bounded by ``offer``: the end of a stream always fits.
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.limit = buffer_events
        self._hub = hub
        self._writer = writer
        self._transport: asyncio.WriteTransport | None = writer.transport if writer is not None else None
        self._http_version = http_version
        self._chunked = True
        self.direct_ready = False
        self.ended = False  # the body's generator has finished: the response is (being) closed

    def _body_is_chunked(self) -> bool:
        """How uvicorn framed this response's body. Its httptools cycle says so once the
        headers are out (it chunks any body of unknown length); its h11 one does not, and
        h11 chunks only for HTTP/1.1 (a 1.0 body runs to the close)."""
        chunked = getattr(self._writer, "chunked_encoding", None)
        return chunked if isinstance(chunked, bool) else self._http_version == "1.1"

    def _direct_bytes(self, frames: Frames) -> bytes:
        return frames.sse_chunk(self.public) if self._chunked else frames.sse(self.public)

    def offer_now(self, frames: Frames) -> bool:
        if not self.direct_ready or self.closed:
            return False
        if frames.event.id <= self.last_id:
            return True
        transport = self._transport
        data = self._direct_bytes(frames)
        if transport.is_closing() or not has_room(transport, data, self.limit):
            return False  # offer() lets it go or drops it
        self.last_id = frames.event.id
        transport.write(data)
        return True

    async def _offer_direct(self, frames: Frames, *, wait: bool) -> None:
        transport = self._transport
        if transport.is_closing():
            self.gone()
            return
        await self._write_direct(transport, self._direct_bytes(frames), frames.event.id, wait=wait)

    async def offer(self, frames: Frames, *, wait: bool) -> None:
        event_id = frames.event.id
        if self.closed or event_id <= self.last_id:
            return
        if self.direct_ready:
            await self._offer_direct(frames, wait=wait)
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
        # What it had not taken is dropped: it resumes from its own last id. (A direct
        # client's transport keeps what it was written: the reason follows it, in order.)
        while not self.queue.empty():
            self.queue.get_nowait()
        body = json.dumps(disconnect_message(reason))
        self.queue.put_nowait(f"event: patreon:disconnect\ndata: {body}\n\n".encode())
        self.queue.put_nowait(_END)
        if self.direct_ready:
            # The reason waits behind what the transport holds: a client that never reads
            # again would keep that buffer and its place. Cut it after a while, unless the
            # stream has ended by then (its connection may be serving another request).
            asyncio.get_running_loop().call_later(DROP_GRACE_S, self._cut_if_stuck)

    def _cut_if_stuck(self) -> None:
        if not self.ended and not self._transport.is_closing():
            self._transport.abort()

    def gone(self) -> None:
        """The client went away: the stream ends now (and frees its place)."""
        self._hub.leave(self)
        self.queue.put_nowait(_END)

    async def chunks(self, after: int, on_direct: Callable[[], None] | None = None):
        """The response body: the hello, then events, until dropped, stopped or too old.
        ``on_direct``: called once events go straight to the transport."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        yield Chunk(f"retry: {RECONNECT_DELAY_MS}\n: subscribed after {after}\n\n".encode())
        # Resumed: Falcon's send of the hello has returned, so uvicorn has written the
        # headers and the hello to the transport; events may follow them there.
        if self._transport is not None and not self._transport.is_closing():
            self._chunked = self._body_is_chunked()
            self.direct_ready = True
            if on_direct is not None:
                on_direct()
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
            self.ended = True
            joining.cancel()
            self._hub.leave(self)
