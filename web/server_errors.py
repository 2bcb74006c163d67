"""The errors answered outside the Falcon app, in the same JSON shape as web.errors.

Two layers answer before (or around) the app, each in plain text of its own:

* waitress's parser: a malformed request line or header, a bad ``Content-Length``
  (400), headers over ``max_request_header_size`` (431), a body over
  ``max_request_body_size`` (413), an unsupported ``Transfer-Encoding`` (waitress's
  501, a 400 here: bad input is never a 5xx).
  ``JsonErrorChannel`` answers them as JSON. A body that is too large is refused
  from its ``Content-Length`` alone, before it is read; the channel then reads and
  drops what the client still sends (up to ``MAX_DRAIN_BYTES``) before it closes,
  because closing a socket with unread data resets the connection, and a client
  still sending (most do: they read the answer only once the body is out) would
  lose the 413 to that reset.
* engine.io (Socket.IO's transport): a refused handshake or long-poll (bad origin,
  transport, protocol version, session) is a 400 ``text/plain``. ``JsonErrorResponses``
  rewrites any error answer in plain text (or with no type) into the JSON shape,
  keeping its status and headers. Socket.IO clients read only the status of such an
  answer, so the body is free; HTML error pages meant for a browser are left alone.
"""

from __future__ import annotations

import functools
import logging
import socket
from collections.abc import Callable, Iterable
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import create_server
from waitress.task import ErrorTask
from waitress.utilities import RequestEntityTooLarge

from live_events.engineio_errors import engineio_error_body
from web import codes
from web.errors import code_for_status, error_bytes

log = logging.getLogger(__name__)

# How much of a refused body is read and dropped before the connection closes anyway.
MAX_DRAIN_BYTES = 64 * 1024 * 1024

# waitress's own errors, by status: a stable code and a message without its internals.
WAITRESS_CODES = {
    400: (codes.BAD_REQUEST, "The request is malformed"),
    413: (codes.PAYLOAD_TOO_LARGE, "The request body is too large"),
    431: (codes.REQUEST_HEADERS_TOO_LARGE, "The request headers are too large"),
    500: (codes.INTERNAL_ERROR, "Internal server error"),
}
# waitress answers a Transfer-Encoding it does not know (anything but chunked) with 501;
# it is the client's request that is wrong, so it is a 400 here: no 5xx for bad input.
UNSUPPORTED_TRANSFER_ENCODING = (
    codes.UNSUPPORTED_TRANSFER_ENCODING,
    "Only Transfer-Encoding: chunked is supported",
)


class JsonErrorTask(ErrorTask):
    """waitress's error answer, as JSON: same status, ``Connection: close``."""

    def execute(self) -> None:
        error = self.request.error
        status = 400 if error.code == 501 else error.code
        code, message = (
            UNSUPPORTED_TRANSFER_ENCODING
            if error.code == 501
            else WAITRESS_CODES.get(error.code, (code_for_status(error.code), error.reason))
        )
        detail = str(error.body or "").strip()
        if status != 500 and detail:
            # The parser's own reason ("Content-Length is invalid", "exceeds max_body of
            # 4194304"): about the client's request, so safe to tell it.
            message = f"{message}: {detail}"
        body = error_bytes(message, code)
        self.status = "400 Bad Request" if error.code == 501 else f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Parser(HTTPRequestParser):
    """waitress's parser, telling the channel when it refused a body as too large."""

    def __init__(self, adj, on_too_large: Callable[[int | None], None]):
        super().__init__(adj)
        self._on_too_large = on_too_large

    def received(self, data: bytes) -> int:
        was_completed = self.completed
        consumed = super().received(data)
        if not was_completed and self.completed and isinstance(self.error, RequestEntityTooLarge):
            # The rest of this read is the refused body: claim it, so it is not
            # parsed as the next request, and tell the channel how much is still to come.
            # No "100 Continue" for a body we refuse: waitress would send one and then
            # wait for the body (never answering a client that waits for the 100).
            self.expect_continue = False
            already = len(data) - consumed
            left = None if self.chunked else max(0, self.content_length - already)
            self._on_too_large(left)
            return len(data)
        return consumed


class JsonErrorChannel(HTTPChannel):
    error_task_class = JsonErrorTask

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.parser_class = functools.partial(_Parser, on_too_large=self._start_draining)
        self._draining = False
        self._drain_left = 0
        self._answer_sent = False

    def _start_draining(self, left: int | None) -> None:
        self._drain_left = MAX_DRAIN_BYTES if left is None else min(left, MAX_DRAIN_BYTES)
        self._draining = self._drain_left > 0

    def readable(self) -> bool:
        if self._draining:
            return not self.will_close
        return super().readable()

    def recv(self, buffer_size: int) -> bytes:
        if not self._draining:
            return super().recv(buffer_size)
        try:
            data = self.socket.recv(buffer_size)
        except OSError:
            data = b""
        if not data:  # the client closed (or reset): nothing left to drop
            self._draining = False
            HTTPChannel.handle_close(self)
        return data

    def received(self, data: bytes) -> bool:
        if not self._draining:
            return super().received(data)
        self._drain_left -= len(data)
        if self._drain_left <= 0:
            self._draining = False
            if self._answer_sent:
                self.will_close = True  # writable() -> handle_write() -> handle_close()
        return True

    def handle_close(self) -> None:
        if self._draining and not self._answer_sent and self.connected and not self.total_outbufs_len:
            # The 413 is out: end our side (the client sees the answer complete) and keep
            # reading what it still sends; received() closes once it has all come in.
            self._answer_sent = True
            self.will_close = self.close_when_flushed = False
            try:
                self.socket.shutdown(socket.SHUT_WR)
                return
            except OSError:
                self._draining = False
        super().handle_close()


def create_json_server(application: Callable, **kwargs: Any):
    """``waitress.server.create_server`` whose own errors are JSON (``JsonErrorChannel``)."""
    server = create_server(application, **kwargs)
    servers = [server] if hasattr(server, "channel_class") else list(getattr(server, "map", {}).values())
    for each in servers:
        if hasattr(each, "channel_class"):
            each.channel_class = JsonErrorChannel
    return server


class JsonErrorResponses:
    """WSGI middleware: an error answered in plain text (or untyped) becomes JSON."""

    def __init__(self, app: Callable):
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        held: dict[str, Any] = {}

        def hold_errors(status: str, headers: list[tuple[str, str]], exc_info=None):
            content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
            if int(status[:3]) >= 400 and (not content_type or content_type.startswith("text/plain")):
                held.update(status=status, headers=headers)
                return lambda _data: None  # the body comes back from the app; it is replaced
            return start_response(status, headers, exc_info)

        result = self._app(environ, hold_errors)
        if not held:
            return result
        try:
            text = b"".join(result).decode("utf-8", "replace").strip()
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        body = self._json_for(int(held["status"][:3]), text)
        headers = [(k, v) for k, v in held["headers"] if k.lower() not in ("content-type", "content-length")]
        start_response(
            held["status"],
            [*headers, ("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    @staticmethod
    def _json_for(status: int, text: str) -> bytes:
        return engineio_error_body(status, text, code_for_status)
