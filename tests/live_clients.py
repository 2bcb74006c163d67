"""Lean asyncio subscribers of the live program, thousands per process: Engine.IO v4 /
Socket.IO v5 over WebSocket (wsproto) and over long-polling, and SSE. Used by the
live tests (1,000 clients across a kill) and the live benchmark (10,000).

They speak the wire protocol socket.io-client speaks (the npm client itself is tested
in tests/integration/test_live.py); each one records the id of every
``patreon:webhook`` it hears and when, and counts an id heard twice. With
``reconnect`` a client reconnects after its connection ends, passing the last id it
received as ``auth.since`` (``Last-Event-ID`` for SSE), as a site's page does.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections.abc import Callable
from typing import Any

import wsproto
import wsproto.events as ws_events

WEBHOOK = "patreon:webhook"
RECORD_SEPARATOR = "\x1e"  # between Engine.IO packets in one long-poll answer
CONNECT_TIMEOUT_S = 20.0


FULL = "HTTP_503"  # live is at LIVE_MAX_CONNECTIONS: not a refusal, a "retry later"
FULL_RETRY_S = 5.0  # live's Retry-After

class Subscriber:
    kind = "subscriber"

    def __init__(
        self,
        host: str,
        port: int,
        auth: dict[str, Any],
        *,
        reconnect: bool = False,
        on_event: Callable[[Subscriber, int, float], None] | None = None,
        reconnect_delay_s: tuple[float, float] = (0.05, 1.0),
    ):
        self.host, self.port = host, port
        self.auth = dict(auth)
        self.reconnect = reconnect
        self.on_event = on_event
        self.reconnect_delay_s = reconnect_delay_s
        self.received: dict[int, float] = {}  # event id -> perf_counter at arrival
        self.names: dict[str, int] = {}  # event name -> how many
        self.duplicates = 0
        self.last_id: int | None = auth.get("since")
        self.connects = 0
        self.refused: str | None = None  # the code of a refusal
        self.extra_headers: dict[str, str] = {}  # e.g. a session Cookie
        self.disconnect_reasons: list[str] = []
        self.connected = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._stopping = False

    # -- what every kind records ----------------------------------------------------------
    def _heard(self, name: str, data: Any) -> None:
        self.names[name] = self.names.get(name, 0) + 1
        if name == "patreon:disconnect" and isinstance(data, dict):
            self.disconnect_reasons.append(str(data.get("code")))
        if name != WEBHOOK or not isinstance(data, dict):
            return
        self._heard_webhook(data.get("id"))

    def _heard_webhook(self, event_id: Any) -> None:
        now = time.perf_counter()
        if event_id in self.received:
            self.duplicates += 1
            return
        self.received[event_id] = now
        self.last_id = event_id if self.last_id is None else max(self.last_id, event_id)
        if self.on_event is not None:
            self.on_event(self, event_id, now)

    def connect_auth(self) -> dict[str, Any]:
        auth = dict(self.auth)
        if self.last_id is not None:
            auth["since"] = self.last_id
        return auth

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Subscriber:
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._session()
            except (OSError, asyncio.IncompleteReadError, ValueError, wsproto.utilities.LocalProtocolError):
                pass
            self.connected.clear()
            if not self.reconnect or self._stopping or (self.refused and self.refused != FULL):
                return
            if self.refused == FULL:
                # 503 CONNECTIONS_FULL asks to come back (Retry-After: 5): a page does.
                self.refused = None
                await asyncio.sleep(random.uniform(1.0, FULL_RETRY_S))
                continue
            await asyncio.sleep(random.uniform(*self.reconnect_delay_s))

    async def _session(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass


def _socketio_event(text: str) -> tuple[str, Any] | None:
    """A Socket.IO EVENT packet ("42[name, data]" on "/") as (name, data)."""
    if not text.startswith("42"):
        return None
    args = json.loads(text[2:])
    return (args[0], args[1] if len(args) > 1 else None) if isinstance(args, list) and args else None


class SocketIoSubscriber(Subscriber):
    """What both Socket.IO transports share: the packets after the Engine.IO open."""

    def _on_packet(self, text: str, send: Callable[[str], None]) -> bool:
        """Handle one Engine.IO packet; False when the connection is over."""
        kind = text[:1]
        if kind == "2":  # ping
            send("3")
        elif kind == "0":  # open: now the Socket.IO CONNECT, with auth
            send("40" + json.dumps(self.connect_auth()))
        elif kind == "1":  # close
            return False
        elif kind == "4":
            if text.startswith("40"):
                self.connects += 1
                self.connected.set()
            elif text.startswith("44"):
                body = json.loads(text[2:] or "{}")
                self.refused = str(body.get("message"))
                return False
            elif text.startswith("41"):
                return False
            else:
                event = _socketio_event(text)
                if event is not None:
                    self._heard(*event)
        return True


class Stallable:
    """A subscriber on one connection that can stop reading it (``pause``), as a stalled
    browser tab does; ``receive_buffer``: a small SO_RCVBUF, so it backs up soon."""

    def __init__(self, *args: Any, receive_buffer: int | None = None, **kw: Any):
        super().__init__(*args, **kw)
        self.receive_buffer = receive_buffer
        self.reading = asyncio.Event()
        self.reading.set()

    def pause(self) -> None:
        self.reading.clear()

    def resume(self) -> None:
        self.reading.set()

    async def _open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.receive_buffer is None:
            return await asyncio.open_connection(self.host, self.port)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (self.host, self.port))
        return await asyncio.open_connection(sock=sock, limit=self.receive_buffer)


class WebSocketSubscriber(Stallable, SocketIoSubscriber):
    kind = "websocket"

    async def _session(self) -> None:
        reader, writer = await asyncio.wait_for(self._open(), CONNECT_TIMEOUT_S)
        conn = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        out: list[bytes] = []

        def send(text: str) -> None:
            out.append(conn.send(ws_events.Message(data=text)))

        try:
            writer.write(
                conn.send(
                    ws_events.Request(
                        host=f"{self.host}:{self.port}",
                        target="/socket.io/?EIO=4&transport=websocket",
                        extra_headers=[(k.encode(), v.encode()) for k, v in self.extra_headers.items()],
                    )
                )
            )
            text_parts: list[str] = []
            while True:
                await self.reading.wait()
                data = await reader.read(self.receive_buffer or 65536)
                if not data:
                    return
                conn.receive_data(data)
                for event in conn.events():
                    if isinstance(event, ws_events.TextMessage):
                        text_parts.append(event.data)
                        if event.message_finished:
                            text, text_parts = "".join(text_parts), []
                            if not self._on_packet(text, send):
                                return
                    elif isinstance(event, ws_events.Ping):
                        out.append(conn.send(event.response()))
                    elif isinstance(event, ws_events.CloseConnection):
                        return
                    elif isinstance(event, ws_events.RejectConnection):
                        self.refused = f"HTTP_{event.status_code}"
                        return
                if out:
                    writer.write(b"".join(out))
                    out.clear()
        finally:
            writer.close()


class _Http:
    """One keep-alive HTTP/1.1 connection: requests one at a time; Content-Length or
    chunked answers (uvicorn chunks what engine.io sends without a length)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), CONNECT_TIMEOUT_S
        )

    async def request(self, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
        reused = self._writer is not None and not self._reader.at_eof()
        if not reused:
            self.close()
            await self._open()
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
        if body:
            head += "Content-Type: text/plain;charset=UTF-8\r\n"
        request = head.encode() + b"\r\n" + body
        self._writer.write(request)
        status_line = await self._reader.readline()
        if not status_line and reused:
            # The server closed this idle keep-alive connection (uvicorn does after
            # timeout_keep_alive) as the request went out: a browser sends it again on a
            # new connection, and so does this client (before, the pong POST after 25 s
            # failed here and the whole session reconnected; issue 12).
            self.close()
            await self._open()
            self._writer.write(request)
            status_line = await self._reader.readline()
        if not status_line:
            raise ConnectionError("closed")
        status = int(status_line.split()[1])
        length, chunked = 0, False
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
        if not chunked:
            return status, await self._reader.readexactly(length) if length else b""
        parts = []
        while True:
            size = int((await self._reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await self._reader.readline()  # the blank line after the last chunk
                return status, b"".join(parts)
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None


class PollingSubscriber(SocketIoSubscriber):
    kind = "polling"

    async def _session(self) -> None:
        polls, posts = _Http(self.host, self.port), _Http(self.host, self.port)
        outbox: list[str] = []
        try:
            status, body = await polls.request("GET", "/socket.io/?EIO=4&transport=polling")
            if status != 200:
                self.refused = f"HTTP_{status}"
                return
            text = body.decode()
            sid = json.loads(text[1:])["sid"]
            target = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
            if not self._on_packet(text, outbox.append):
                return
            while True:
                if outbox:
                    payload, outbox[:] = RECORD_SEPARATOR.join(outbox).encode(), []
                    status, _ = await posts.request("POST", target, payload)
                    if status != 200:
                        return
                status, body = await polls.request("GET", target)
                if status != 200:
                    return
                for packet in body.decode().split(RECORD_SEPARATOR):
                    if packet and not self._on_packet(packet, outbox.append):
                        return
        finally:
            polls.close()
            posts.close()


class SseSubscriber(Stallable, Subscriber):
    """EventSource: ``auth`` holds the query (``{"key": ...}`` or ``{"token": ...}``).
    ``http_version``: of the request line ("1.0": a client that cannot take a chunked
    body); the stream is read as the server framed it, chunked or to the close."""

    kind = "sse"

    def __init__(self, *args: Any, http_version: str = "1.1", **kw: Any):
        super().__init__(*args, **kw)
        self.http_version = http_version
        self.chunked: bool | None = None  # how the last stream's body came: chunked or to the close

    async def _session(self) -> None:
        reader, writer = await asyncio.wait_for(self._open(), CONNECT_TIMEOUT_S)
        try:
            query = "&".join(f"{k}={v}" for k, v in self.auth.items() if k != "since")
            head = f"GET /api/patreon/events?{query} HTTP/{self.http_version}\r\nHost: {self.host}:{self.port}\r\nAccept: text/event-stream\r\n"
            if self.last_id is not None:
                head += f"Last-Event-ID: {self.last_id}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in self.extra_headers.items())
            writer.write(head.encode() + b"\r\n")
            status = int((await reader.readline()).split()[1])
            chunked = False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower():
                    chunked = True
            if status != 200:
                self.refused = f"HTTP_{status}"
                return
            self.connects += 1
            self.chunked = chunked
            buffer = b""
            fields: dict[str, str] = {}
            while True:
                await self.reading.wait()
                if chunked:
                    size = int((await reader.readline()).strip() or b"0", 16)
                    if size == 0:
                        return
                    buffer += await reader.readexactly(size)
                    await reader.readexactly(2)
                else:
                    data = await reader.read(self.receive_buffer or 65536)
                    if not data:
                        return
                    buffer += data
                *lines, buffer = buffer.split(b"\n")
                for raw in lines:
                    line = raw.decode()
                    if line == "":
                        if "data" in fields:
                            name = fields.get("event", "message")
                            self._heard(name, json.loads(fields["data"]))
                        fields = {}
                    elif line.startswith(": subscribed"):
                        self.connected.set()
                    elif not line.startswith(":"):
                        name, _, value = line.partition(": ")
                        fields[name] = value
        finally:
            writer.close()
