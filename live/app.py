"""The live program's ASGI app: Socket.IO (``live.sio``) in front of a Falcon ASGI app
serving SSE (``GET /api/patreon/events``) and ``GET /api/patreon/live/health``, behind
the connection cap (``ConnectionCap``).

``LiveProgram`` owns the parts and their lifecycle: the hub's tail (woken by
``live.notify``), the session re-check, and shutdown.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any
from urllib.parse import parse_qs

import falcon
import falcon.asgi

from live import codes, collector
from live.auth import LiveAuth
from live.hub import Hub, direct_writer
from live.notify import PostgresWakeupListener, WakeupListener
from live.origins import AllowedOrigins, WebPageCors
from live.settings import LiveSettings
from live.sio import SOCKETIO_PATH, LiveSocketIo
from live.sse import EVENTS_PATH, SseClient
from live_events.codes import (
    INTERNAL_ERROR,
    INVALID_LAST_EVENT_ID,
    INVALID_SINCE,
    JSONP_NOT_SUPPORTED,
    UNAUTHORIZED,
)
from live_events.cursor import parse_event_id, reject_repeated
from live_events.engineio_errors import engineio_error_body
from live_events.errors import ApiError, error_body, error_bytes, shared_code_for_status
from settings.config import Config
from store.database import Store

log = logging.getLogger(__name__)

HEALTH_PATH = "/api/patreon/live/health"
CONNECTIONS_FULL_RETRY_AFTER_S = 5
AUTH_RECHECK_INTERVAL_S = 5.0  # how long a creator's connection outlives their logout
CLIENT_GONE = "live.client_gone"  # an SSE request's scope: callbacks for its client's disconnect
SSE_WRITER = "live.sse_writer"  # an SSE request's scope: uvicorn's request cycle, to write events to


def _serialize(req, resp, ex: falcon.HTTPError) -> None:
    # The shared shape ({"success": false, "error", "code"}); web's handlers are not ASGI's.
    code = ex.code if isinstance(ex.code, str) else shared_code_for_status(ex.status_code)
    resp.content_type = falcon.MEDIA_JSON
    resp.media = error_body(ex.description or ex.title, code, **getattr(ex, "extra", {}))


async def _handle_unexpected(req, resp, ex: Exception, params) -> None:
    if isinstance(ex, falcon.HTTPError):
        raise ex
    log.exception("unhandled error on %s %s", req.method, req.path)
    raise ApiError(500, INTERNAL_ERROR, "Internal server error")


class SseResource:
    def __init__(self, program: LiveProgram):
        self._program = program

    async def start_after(self, req: falcon.asgi.Request) -> int:
        # EventSource resends the original URL on reconnect: the header is newer than ?since=.
        last_event_id = (req.get_header("Last-Event-ID") or "").strip()
        since = req.get_param("since")
        hub = self._program.hub
        newest = max(hub.cursor, await hub.latest_id())
        if last_event_id:
            after = parse_event_id(last_event_id, INVALID_LAST_EVENT_ID, "Last-Event-ID")
        elif since is not None:
            after = parse_event_id(since, INVALID_SINCE, "since")
        else:
            return newest
        return min(after, newest)

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        reject_repeated(req)
        program = self._program
        audience = await program.hub.db(program.auth.from_request, req)
        after = await self.start_after(req)
        client = SseClient(
            audience,
            program.settings.client_buffer_events,
            program.hub,
            writer=req.scope.get(SSE_WRITER),
            http_version=req.scope.get("http_version", "1.1"),
        )
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("X-Accel-Buffering", "no")  # nginx: do not buffer the stream
        req.scope.get(CLIENT_GONE, []).append(client.gone)
        resp.sse = program.sse_stream(client, after)


class HealthResource:
    def __init__(self, program: LiveProgram):
        self._program = program

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        program = self._program
        resp.media = {
            "success": True,
            "connections": program.connections,
            "socketio": program.sio.open_connections,
            "direct": program.sio.direct_clients,  # Socket.IO clients on the WebSocket fast path
            "sse": program.sse_open,
            "sseDirect": program.sse_direct,
            "cursor": program.hub.cursor,
        }
        gc_pauses = collector.pauses()
        if gc_pauses is not None:
            resp.media["gc"] = gc_pauses


class ConnectionCap:
    """ASGI: a new connection past ``LIVE_MAX_CONNECTIONS`` gets 503 ``CONNECTIONS_FULL``.

    New means an SSE request or a Socket.IO handshake (no ``sid`` yet): a connected
    client's own polls and upgrades always pass."""

    def __init__(self, app: Any, program: LiveProgram):
        self._app = app
        self._program = program

    def _is_new(self, scope: dict[str, Any]) -> bool:
        path = scope.get("path", "")
        if path == EVENTS_PATH:
            return scope["type"] == "http" and scope.get("method") == "GET"
        if path.startswith(f"/{SOCKETIO_PATH}"):
            return "sid" not in parse_qs(scope.get("query_string", b"").decode("latin-1"))
        return False

    async def __call__(self, scope, receive, send) -> None:
        program = self._program
        if scope["type"] in ("http", "websocket") and self._is_new(scope):
            if program.stopping or program.connections >= program.settings.max_connections:
                await self._refuse(scope, send)
                return
            if scope["type"] == "http":
                scope, receive = self._telling_disconnects(scope, receive)
                scope[SSE_WRITER] = direct_writer(send)
        await self._app(scope, receive, send)

    @staticmethod
    def _telling_disconnects(scope, receive):
        """An SSE stream's client that goes away ends the stream at once, not at its
        next write (Falcon notices only then: up to a keep-alive, 15 s, later). Falcon
        reads ``receive`` for the disconnect; ``CLIENT_GONE`` callbacks hear it too."""
        callbacks: list = []

        async def receive_telling():
            message = await receive()
            if message["type"] == "http.disconnect":
                for callback in callbacks:
                    callback()
            return message

        return {**scope, CLIENT_GONE: callbacks}, receive_telling

    async def _refuse(self, scope, send) -> None:
        body = json.dumps(
            error_body("Too many live connections are open; retry later", codes.CONNECTIONS_FULL)
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(CONNECTIONS_FULL_RETRY_AFTER_S).encode()),
        ]
        prefix = "websocket.http" if scope["type"] == "websocket" else "http"
        await send({"type": f"{prefix}.response.start", "status": 503, "headers": headers})
        await send({"type": f"{prefix}.response.body", "body": body})


class EngineIoErrorsAsJson:
    """ASGI: engine.io's own refusals (bad origin, transport, protocol version, session)
    come back in the bridge's JSON error shape with a code, as web's do
    (``live_events.engineio_errors``); every other answer passes through untouched.

    JSONP polling (``j=``) is refused before engine.io sees it: its answer is a script
    any page may load, cookies and all, a way around CORS that no client of ours needs
    (issue 16, finding 9)."""

    def __init__(self, app: Any):
        self._app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith(f"/{SOCKETIO_PATH}"):
            await self._app(scope, receive, send)
            return
        if "j" in parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
            body = error_bytes("JSONP polling (j=) is not supported", JSONP_NOT_SUPPORTED)
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        held: dict[str, Any] = {}
        body: list[bytes] = []

        async def hold_errors(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = dict((k.lower(), v) for k, v in message.get("headers", []))
                content_type = headers.get(b"content-type", b"")
                if message["status"] >= 400 and (not content_type or content_type.startswith(b"text/plain")):
                    held.update(message)
                    return
            elif message["type"] == "http.response.body" and held:
                body.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                answer = engineio_error_body(
                    held["status"], b"".join(body).decode("utf-8", "replace").strip()
                )
                headers = [
                    (k, v)
                    for k, v in held.get("headers", [])
                    if k.lower() not in (b"content-type", b"content-length")
                ]
                headers += [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                ]
                await send({"type": "http.response.start", "status": held["status"], "headers": headers})
                await send({"type": "http.response.body", "body": answer})
                return
            await send(message)

        await self._app(scope, receive, hold_errors)


class LiveProgram:
    def __init__(self, config: Config, settings: LiveSettings, store: Store):
        self.settings = settings
        self.stopping = False
        self._store = store
        self.hub = Hub(store, public_feed=settings.public_feed)
        self.auth = LiveAuth(config, settings, store)
        self.origins = AllowedOrigins(settings.cors_origins, web_port=config.port)
        self.sio = LiveSocketIo(
            self.hub,
            self.auth,
            buffer_events=settings.client_buffer_events,
            origins=self.origins,
        )
        self.sse_clients: set[SseClient] = set()
        self.sse_open = 0
        self.sse_direct = 0  # SSE streams whose events go straight to their transport (health)
        self._tasks: list[asyncio.Task] = []
        self._listener: WakeupListener | PostgresWakeupListener | None = None
        self.app = ConnectionCap(EngineIoErrorsAsJson(self.sio.asgi_app(self._falcon_app())), self)

    def _falcon_app(self) -> falcon.asgi.App:
        origins = self.settings.cors_origins
        middleware: list[Any] = [WebPageCors(self.origins)]  # first: its headers are set last
        if origins:
            middleware.append(
                falcon.CORSMiddleware(
                    allow_origins="*" if "*" in origins else list(origins),
                    expose_headers=["Retry-After"],
                )
            )
        app = falcon.asgi.App(middleware=middleware)
        app.req_options.strip_url_path_trailing_slash = True
        app.add_error_handler(Exception, _handle_unexpected)
        app.set_error_serializer(_serialize)
        app.add_route(EVENTS_PATH, SseResource(self))
        app.add_route(HEALTH_PATH, HealthResource(self))
        return app

    @property
    def connections(self) -> int:
        return self.sio.open_connections + self.sse_open

    async def sse_stream(self, client: SseClient, after: int):
        self.sse_open += 1
        self.sse_clients.add(client)
        try:
            async for chunk in client.chunks(after, on_direct=self._count_sse_direct):
                yield chunk
        finally:
            self.sse_open -= 1
            if client.direct_ready:
                self.sse_direct -= 1
            self.sse_clients.discard(client)

    def _count_sse_direct(self) -> None:
        self.sse_direct += 1  # kept, not counted: health is asked often

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await self.hub.start()
        # PostgreSQL: LISTEN, woken by a commit on any host; SQLite: this host's web.
        if self._store.dialect == "postgresql":
            self._listener = PostgresWakeupListener(self._store.url)
        else:
            self._listener = WakeupListener(self.settings.notify_endpoint)
        self._tasks = [
            asyncio.create_task(self.hub.run(self._listener.wait, self.settings.poll_interval_s)),
            asyncio.create_task(self._recheck_sessions()),
        ]

    async def stop(self) -> None:
        """Stop taking clients and close the open ones: they reconnect and resume."""
        self.stopping = True
        await self.sio.close_all()
        for client in list(self.sse_clients):
            await client.drop("SHUTTING_DOWN")

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if isinstance(self._listener, PostgresWakeupListener):
            await self._listener.aclose()
        elif self._listener is not None:
            self._listener.close()
        self.hub.close()

    async def _recheck_sessions(self) -> None:
        while True:
            await asyncio.sleep(AUTH_RECHECK_INTERVAL_S)
            for client in [c for c in self.hub.clients if c.audience.session_id is not None]:
                try:
                    authorized = await self.hub.db(self.auth.still_authorized, client.audience)
                except Exception:
                    log.exception("re-checking a session failed")
                    continue
                if authorized:
                    continue
                if isinstance(client, SseClient):
                    await client.drop(UNAUTHORIZED)
                else:
                    await self.sio.logged_out(client)
