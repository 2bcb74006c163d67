"""The one HTTP client of the benchmarks: a keep-alive HTTP/1.1 connection.

Both sides of every comparison use this same client, so its own cost (small:
``http.client`` does little beyond writing the request and parsing the headers) is
paid equally on both sides and cannot tilt a ratio. One instance is one connection
and belongs to one thread.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

REQUEST_TIMEOUT_S = 30.0

# A reused keep-alive connection the server has closed in the meantime fails like
# this on the next request; the request is then sent again on a fresh connection.
_STALE_CONNECTION = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class UnexpectedStatus(Exception):
    def __init__(self, method: str, path: str, status: int, body: bytes):
        super().__init__(f"{method} {path.split('?')[0]} -> {status}: {body[:160]!r}")
        self.status = status


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpClient:
    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ):
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"benchmarks speak plain http to a local server, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self._conn: http.client.HTTPConnection | None = None
        self._used = False

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            self._used = False
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        expect: int | None = None,
    ) -> Reply:
        """Send one request; with ``expect``, any other status raises ``UnexpectedStatus``."""
        merged = {**self.headers, **(headers or {})}
        for attempt in (1, 2):
            conn = self._connection()
            reused = self._used
            try:
                conn.request(method, path, body=body, headers=merged)
                resp = conn.getresponse()
                data = resp.read()
            except _STALE_CONNECTION:
                self.close()
                if reused and attempt == 1:
                    continue
                raise
            except (OSError, http.client.HTTPException):
                self.close()
                raise
            self._used = True
            if resp.will_close:
                self.close()
            reply = Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
            if expect is not None and reply.status != expect:
                raise UnexpectedStatus(method, path, reply.status, data)
            return reply
        raise AssertionError("unreachable")

    def get(self, path: str, **kw) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: bytes, **kw) -> Reply:
        return self.request("POST", path, body=body, **kw)
