"""Socket.IO on live: python-socketio's ``AsyncServer`` (ASGI), WebSocket and polling.

The events of ``live_events.wire_format``: ``patreon:webhook`` with
``{"id", "type", "data", "included", "receivedAt"}`` and the original's
``patreon:member:*`` / ``patreon:pledge:*`` aliases, in store order, each encoded once
for every client (``live.hub.Frames``). ``auth.since`` replays what a client missed,
then it hears live events, none twice. The public feed's events are ``patreon:public``.

A refused connect is a ``connect_error`` whose message is the code. A client whose
engine.io queue holds ``LIVE_CLIENT_BUFFER_EVENTS`` packets is sent
``patreon:disconnect`` ``{"code": "SLOW_CONSUMER"}`` and its transport is closed:
socket.io-client reconnects on its own; pass ``auth`` as a function returning the
last id seen as ``since`` and nothing is missed.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qs

import engineio.exceptions
import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from live.audience import Audience
from live.auth import LiveAuth
from live.engineio_requests import translate_request
from live.hub import (
    CATCH_UP_TIMEOUT_S,
    DROP_GRACE_S,
    PACE_S,
    SLOW_CONSUMER,
    Client,
    Frames,
    Hub,
    direct_writer,
    disconnect_message,
    has_room,
    websocket_frame,
)
from live.origins import AllowedOrigins
from live_events.codes import INVALID_SINCE
from live_events.cursor import parse_event_id
from live_events.errors import ApiError
from live_events.subscribers import SubscriberRefused

log = logging.getLogger(__name__)

NAMESPACE = "/"
SOCKETIO_PATH = "socket.io"
PING_INTERVAL_S = 25
PING_TIMEOUT_S = 20
PENDING_CONNECT_TIMEOUT_S = 10.0
MAX_HTTP_BUFFER_BYTES = 64 * 1024  # clients only send connects and pongs
# After engine.io's queue is empty, its writer may still hold the CONNECT answer for a
# few loop turns (a task per poll): this is far more than that.
DIRECT_SETTLE_S = 0.02
UPGRADE_TIMEOUT_S = 30.0  # an upgrade not done by then stays on engine.io's path
UPGRADE_CHECK_S = 0.01
REFUSED_CLOSE_AFTER_S = 1.0  # a refused client's poll fetches the CONNECT_ERROR well within this


def writable_protocol(environ: dict[str, Any]) -> Any:
    """uvicorn's protocol object of a WebSocket request, if its transport can be written
    to directly and tells its buffer size; None otherwise."""
    if environ.get("asgi.scope", {}).get("type") != "websocket":
        return None
    return direct_writer(environ.get("asgi.send"))


def direct_websocket(server: socketio.AsyncServer, sid: str) -> Any:
    """uvicorn's protocol object of a client that connected over WebSocket directly
    (``transports: ["websocket"]``), or None (polling, or upgraded from it: see
    ``LiveSocketIo._direct_after_upgrade``)."""
    return writable_protocol(server.get_environ(sid, NAMESPACE) or {})


class SioClient(Client):
    """A Socket.IO client. Two ways out:

    * engine.io's own (its queue and writer task, one encode and one frame per packet
      per client): polling, and clients upgraded from polling;
    * direct: a client on WebSocket gets each event's frames as prebuilt bytes written
      to its transport, one write per event (``Frames.websocket``): 10,000 clients
      cost 10,000 writes, not 20,000 encodes. A client that connected over WebSocket
      directly is direct once its CONNECT answer is out; one that upgraded from
      polling once the upgrade is done and engine.io's queue is empty
      (``LiveSocketIo._direct_after_upgrade``). Its buffer is
      the transport's: past ``limit`` events of the current size it is dropped.
      engine.io still writes its pings and the CONNECT answer; events go direct only
      once that answer is out, so the only packets that can overtake each other are
      pings, whose order does not matter.
    """

    kind = "socketio"

    def __init__(
        self, audience: Audience, sid: str, eio_sid: str, server: socketio.AsyncServer, hub: Hub, limit: int
    ):
        super().__init__(audience)
        self.sid = sid
        self.eio_sid = eio_sid
        self._server = server
        self._hub = hub
        self.limit = limit
        self._direct = direct_websocket(server, sid)
        self.direct_ready = False

    @property
    def direct(self) -> bool:
        return self._direct is not None

    def go_direct(self, protocol: Any) -> None:
        """From now on, events go to this WebSocket's transport (after an upgrade)."""
        self._direct = protocol
        self.direct_ready = True

    def offer_now(self, frames: Frames) -> bool:
        if not self.direct_ready or self.closed:
            return False
        if frames.event.id <= self.last_id:
            return True
        transport = self._direct.transport
        if transport is None or transport.is_closing():
            return False  # offer() lets it go
        data = frames.websocket(self.public)
        if not has_room(transport, data, self.limit):
            return False  # offer() drops it
        self.last_id = frames.event.id
        transport.write(data)
        return True

    async def _offer_direct(self, frames: Frames, *, wait: bool) -> None:
        transport = self._direct.transport
        if transport is None or transport.is_closing():
            self._hub.leave(self)
            return
        await self._write_direct(transport, frames.websocket(self.public), frames.event.id, wait=wait)

    async def _drop_direct(self, reason: str) -> None:
        transport = self._direct.transport
        if transport is None or transport.is_closing():
            return
        # What is buffered stays (the client still gets it, in order), then the
        # reason, then the close: it reconnects and resumes after the last id it read.
        transport.write(websocket_frame(disconnect_packet(reason)))
        transport.write(b"\x88\x02\x03\xf3")  # a close frame, status 1011
        transport.close()
        # A client that never reads again would hold the buffer: cut it after a while.
        asyncio.get_running_loop().call_later(DROP_GRACE_S, transport.abort)

    def _socket(self):
        sock = self._server.eio.sockets.get(self.eio_sid)
        return None if sock is None or sock.closed or sock.closing else sock

    async def offer(self, frames: Frames, *, wait: bool) -> None:
        event_id = frames.event.id
        if self.closed or event_id <= self.last_id:
            return
        if self.direct_ready:
            await self._offer_direct(frames, wait=wait)
            return
        sock = self._socket()
        if sock is None:
            self._hub.leave(self)
            return
        if wait:
            waited = 0.0
            while sock.queue.qsize() >= self.limit // 2 and not self.closed and not sock.closed:
                if waited >= CATCH_UP_TIMEOUT_S:
                    await self.drop(SLOW_CONSUMER)
                    return
                await asyncio.sleep(PACE_S)
                waited += PACE_S
            if self.closed or sock.closed:
                return
        elif sock.queue.qsize() >= self.limit:
            await self.drop(SLOW_CONSUMER)
            return
        self.last_id = event_id
        try:
            for pkt in frames.sio(self.public):
                await sock.send(pkt)
        except engineio.exceptions.SocketIsClosedError:
            # engine.io closed it on this very send (its ping timed out): it is gone, not
            # broken; it reconnects and resumes from the last id it really received.
            self._hub.leave(self)

    async def drop(self, reason: str) -> None:
        if self.closed:
            return
        self._hub.leave(self)
        self.reason = reason
        if self.direct_ready:
            await self._drop_direct(reason)
            return
        sock = self._socket()
        if sock is None:
            return
        # What it had not taken is dropped: it resumes from its own last id.
        while not sock.queue.empty():
            sock.queue.get_nowait()
            sock.queue.task_done()
        await self._server.emit(
            "patreon:disconnect", disconnect_message(reason), to=self.sid, namespace=NAMESPACE
        )
        # Closing the transport (not a Socket.IO disconnect) makes the client reconnect.
        await sock.close(wait=False, abort=False)


def disconnect_packet(reason: str) -> str:
    """``patreon:disconnect`` as an engine.io packet's text."""
    message = sio_packet.Packet(
        sio_packet.EVENT, namespace=NAMESPACE, data=["patreon:disconnect", disconnect_message(reason)]
    )
    return eio_packet.Packet(eio_packet.MESSAGE, message.encode()).encode()


class RoomlessManager(socketio.AsyncManager):
    """python-socketio's manager, with a disconnect that costs one client, not all.

    Its ``basic_disconnect`` looks for the client in every room of the namespace, and
    every client has a room of its own (its sid): with 10,000 clients each disconnect
    scans 10,000 rooms, and a burst of them (a restart, ping timeouts under load) is
    quadratic: 30% of live's CPU under the 10,000-subscriber benchmark (py-spy). live
    files its clients in ``live.hub``, never in Socket.IO rooms, so a client is only in
    its sid room and the namespace's ``None`` room: those two are left, and the rest of
    the bookkeeping is python-socketio's own."""

    def basic_disconnect(self, sid, namespace, **kwargs):
        rooms = self.rooms.get(namespace)
        if rooms is None:
            return
        for room in (sid, None):
            if room in rooms and sid in rooms[room]:
                self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting is not None and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]


class OneLineHandlerErrors(logging.Filter):
    """python-socketio/engine.io log a client's malformed packet with a full traceback
    (``logger.exception("message handler error")``): bad input is the client's fault,
    so it becomes one warning line naming the exception type (issue 16, finding 9)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            name = type(record.exc_info[1]).__name__
            record.msg = f"{record.getMessage()}: {name} (a malformed packet from a client?)"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


class LiveSocketIo:
    def __init__(self, hub: Hub, auth: LiveAuth, *, buffer_events: int, origins: AllowedOrigins):
        self._hub = hub
        self._auth = auth
        self._buffer = buffer_events
        self.server = socketio.AsyncServer(
            async_mode="asgi",
            client_manager=RoomlessManager(),
            cors_allowed_origins=origins.engineio_allows,
            cors_credentials=True,
            ping_interval=PING_INTERVAL_S,
            ping_timeout=PING_TIMEOUT_S,
            max_http_buffer_size=MAX_HTTP_BUFFER_BYTES,
            logger=False,
            engineio_logger=False,
        )
        for logger in (self.server.logger, self.server.eio.logger):
            if not any(isinstance(f, OneLineHandlerErrors) for f in logger.filters):
                logger.addFilter(OneLineHandlerErrors())
        self.server.on("connect", self._on_connect)
        self.server.on("disconnect", self._on_disconnect)
        self.clients: dict[str, SioClient] = {}
        self._direct_count = 0  # clients in self.clients whose events go direct (health)
        self._seating: set[asyncio.Task] = set()
        self._install_drivers()

    def _install_drivers(self) -> None:
        """Two entries of engine.io's ASGI driver table are live's own: its request
        translation, which makes no class per request (``live.engineio_requests``),
        and its WebSocket class, wrapped to hear of each upgrade request: engine.io keeps
        the WebSocket of an upgrade to itself, and the client goes direct after it."""
        eio = self.server.eio
        base = eio._async["websocket"]
        live = self

        class UpgradeAwareWebSocket(base):  # engineio.async_drivers.asgi.WebSocket
            async def __call__(self, environ):
                eio_sid = parse_qs(environ.get("QUERY_STRING", "")).get("sid", [None])[0]
                protocol = writable_protocol(environ)
                if eio_sid is not None and protocol is not None:
                    live._spawn(live._direct_after_upgrade(eio_sid, protocol))
                return await super().__call__(environ)

        # A copy: the driver's table is shared by every server in the process.
        eio._async = {**eio._async, "websocket": UpgradeAwareWebSocket, "translate_request": translate_request}

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._seating.add(task)
        task.add_done_callback(self._seating.discard)

    async def _direct_after_upgrade(self, eio_sid: str, protocol: Any) -> None:
        """Once the upgrade is done and nothing is left in engine.io's queue (or in its
        writer, ``DIRECT_SETTLE_S``), the client's events go direct, in order."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + UPGRADE_TIMEOUT_S
        while loop.time() < deadline:
            sock = self.server.eio.sockets.get(eio_sid)
            if sock is None or sock.closed:
                return
            sid = self.server.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
            client = self.clients.get(sid) if sid is not None else None
            if client is not None and client.closed:
                return
            if client is not None and sock.upgraded and sock.queue.empty():
                await asyncio.sleep(DIRECT_SETTLE_S)
                if sock.queue.empty() and not client.closed and not sock.closed:
                    self._mark_direct(client, protocol)  # no await since the check: nothing slips in
                    return
                continue
            await asyncio.sleep(UPGRADE_CHECK_S)

    @property
    def direct_clients(self) -> int:
        return self._direct_count  # kept, not counted: health is asked often, under 10,000 clients

    def _mark_direct(self, client: SioClient, protocol: Any = None) -> None:
        """From now on the client's events go direct; counted while it stays seated."""
        if protocol is not None:
            client.go_direct(protocol)
        else:
            client.direct_ready = True
        if self.clients.get(client.sid) is client:
            self._direct_count += 1

    def asgi_app(self, other_app: Any) -> socketio.ASGIApp:
        return socketio.ASGIApp(self.server, other_asgi_app=other_app, socketio_path=SOCKETIO_PATH)

    @property
    def open_connections(self) -> int:
        return len(self.server.eio.sockets)

    def _refuse(self, sid: str, code: str) -> socketio.exceptions.ConnectionRefusedError:
        """The refusal to raise; the transport is closed once the client had time to read
        it (python-socketio's client leaves it open, and it would hold a place under
        ``LIVE_MAX_CONNECTIONS`` until its ping timeout)."""
        eio_sid = self.server.manager.eio_sid_from_sid(sid, NAMESPACE)
        if eio_sid is not None:
            self._close_later(eio_sid)
        return socketio.exceptions.ConnectionRefusedError(code, {"code": code})

    def _close_later(self, eio_sid: str) -> None:
        async def close() -> None:
            await asyncio.sleep(REFUSED_CLOSE_AFTER_S)
            sock = self.server.eio.sockets.get(eio_sid)
            if sock is None or self.server.manager.sid_from_eio_sid(eio_sid, NAMESPACE):
                return
            if not sock.closed:
                await sock.close(wait=False, abort=False)
            self._forget_closed(eio_sid)

        task = asyncio.create_task(close())
        self._seating.add(task)
        task.add_done_callback(self._seating.discard)

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            audience = await self._hub.db(self._auth.from_environ, environ, auth)
        except SubscriberRefused as ex:
            raise self._refuse(sid, ex.code) from None
        since = None
        if isinstance(auth, dict) and auth.get("since") is not None:
            try:
                since = parse_event_id(auth["since"], INVALID_SINCE, "since")
            except ApiError:
                raise self._refuse(sid, INVALID_SINCE) from None
        # Without a cursor: what is accepted from now on. Past the newest: another (reset) store.
        newest = max(self._hub.cursor, await self._hub.latest_id())
        since = newest if since is None else min(since, newest)
        eio_sid = self.server.manager.eio_sid_from_sid(sid, NAMESPACE)
        client = SioClient(audience, sid, eio_sid, self.server, self._hub, self._buffer)
        self.clients[sid] = client
        task = asyncio.create_task(self._seat(client, since))
        self._seating.add(task)
        task.add_done_callback(self._seating.discard)

    async def _seat(self, client: SioClient, since: int) -> None:
        # Events go out only once the CONNECT answer has: it is sent after this handler returns.
        manager = self.server.manager
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PENDING_CONNECT_TIMEOUT_S
        while not manager.is_connected(client.sid, NAMESPACE):
            if client.closed or loop.time() > deadline or not manager.is_pre_connected(client.sid, NAMESPACE):
                self._forget(client.sid)
                return
            await asyncio.sleep(0.005)
        if client.direct:
            # Direct writes start once engine.io has written the CONNECT answer.
            while True:
                sock = client._socket()
                if sock is None or client.closed:
                    self._forget(client.sid)
                    return
                if sock.queue.empty():
                    break
                await asyncio.sleep(0.005)
            await asyncio.sleep(DIRECT_SETTLE_S)
            self._mark_direct(client)
        try:
            await self._hub.join(client, since, settle_events=self._buffer // 2)
        except Exception:
            log.exception("seating a Socket.IO client failed")
            await self.server.disconnect(client.sid, namespace=NAMESPACE)

    def _forget(self, sid: str) -> None:
        client = self.clients.pop(sid, None)
        if client is not None:
            if client.direct_ready:
                self._direct_count -= 1
            self._hub.leave(client)

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        eio_sid = self.server.manager.eio_sid_from_sid(sid, NAMESPACE)
        self._forget(sid)
        if eio_sid is not None:
            # Under churn, closed sockets left in engine.io's table filled
            # LIVE_MAX_CONNECTIONS and new clients got 503 (see _forget_closed).
            self._drop_closed_later(eio_sid)

    def _drop_closed_later(self, eio_sid: str) -> None:
        # After engine.io's own close() finishes.
        asyncio.get_running_loop().call_soon(self._forget_closed, eio_sid)

    def _forget_closed(self, eio_sid: str) -> None:
        """A closed socket leaves engine.io's table now, not at its next request or ping
        check, and a long-poll it still holds is answered (empty) now: engine.io leaves
        that poll to time out, which holds a client's ``disconnect()`` for 30 s
        (python-socketio's client joins its read loop) and the place for up to 45 s."""
        sock = self.server.eio.sockets.get(eio_sid)
        if sock is None or not sock.closed:
            return
        if not sock.upgraded:
            sock.queue.put_nowait(None)  # the poll's "nothing more": it returns an empty payload
        self.server.eio.sockets.pop(eio_sid, None)

    async def logged_out(self, client: SioClient) -> None:
        self._forget(client.sid)
        await self.server.disconnect(client.sid, namespace=NAMESPACE)
        self._close_later(client.eio_sid)  # its only namespace is gone: so is its place

    async def close_all(self) -> None:
        """Shutting down: close every transport so clients reconnect (to the next live)."""
        for sock in list(self.server.eio.sockets.values()):
            try:
                await sock.close(wait=False, abort=True)
            except Exception:
                log.exception("closing a Socket.IO client failed")
