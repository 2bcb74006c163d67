"""An open-loop HTTP load generator, run as its own process: ``python -m bench.open_loop``.

Why a process of its own: a load generator made of Python threads inside the
benchmark process shares one GIL with everything else the benchmark does, and on 2
cores it fell behind its own schedule on nearly every send (issue 11), so what it
measured was mostly its own queue.

What it does, and why it stays honest:

* **Open loop.** Request ``i`` is due at ``start + i / rate``, whatever happened to
  the ones before; a slow answer never slows the schedule down.
* **Latency from the scheduled time.** Each latency runs from when the request was
  *due* to the end of its body, so time a request spent waiting for a free
  connection, or for this process to get the CPU, counts against the result
  (no coordinated omission). The time from the actual send is reported beside it,
  and so is how late sends went out, so a reader can tell the server's queue from
  the generator's.
* **Keep-alive connections, loopback only.** A fixed pool of HTTP/1.1 connections
  to a ``127.0.0.1``-style host; a request waits for a free one.
* **Bounded.** At most ``count`` requests, and a hard deadline (the schedule's
  length plus ``--grace``): requests not answered by then are reported as
  unfinished, never dropped silently.

The event loop uses ``select.select`` rather than epoll: epoll's timeout has
millisecond resolution (rounded up), which would make every send up to 1 ms late
on its own; ``select`` sleeps to the microsecond. With a few dozen sockets its cost
is negligible.

Input: a JSON object on stdin (``host``, ``port``, ``headers``, ``paths``, ``rate``,
``connections``, ``grace_s``); output: one JSON object on stdout (``Result``'s
fields). Responses must carry ``Content-Length`` (waitress's do); anything else is
counted as an error.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import json
import os
import selectors
import socket
import sys
import time

MAX_HEADER_BYTES = 64 * 1024


@dataclasses.dataclass
class Result:
    sent: int
    completed: int
    unfinished: int
    errors: int
    error_samples: list[str]
    statuses: dict[str, int]
    elapsed_s: float
    latency_from_schedule_s: list[float]  # due -> end of body (the headline)
    latency_from_send_s: list[float]  # actual send -> end of body
    send_late_s: list[float]  # actual send - due (>= 0)
    cpu_s: float  # this generator's own CPU time (user + system)


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def _parse_head(head: bytes) -> tuple[int, int, bool]:
    """(status, Content-Length, server wants to close) of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length: int | None = None
    closing = lines[0].startswith("HTTP/1.0")
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "connection":
            closing = value.strip().lower() == "close"
    if length is None:
        raise ValueError("response without Content-Length")
    return status, length, closing


class _Connection:
    """One keep-alive connection on raw non-blocking sockets (the loop's ``sock_*``
    calls): less of this process's CPU per request than asyncio's streams, which
    leaves more of the 2 cores to the server being measured."""

    def __init__(self, loop: asyncio.AbstractEventLoop, host: str, port: int):
        self._loop = loop
        self._address = (host, port)
        self._sock: socket.socket | None = None
        self._buffer = b""

    async def _socket(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                await self._loop.sock_connect(sock, self._address)
            except BaseException:
                sock.close()
                raise
            self._sock, self._buffer = sock, b""
        return self._sock

    async def send(self, request: bytes) -> None:
        await self._loop.sock_sendall(await self._socket(), request)

    async def response(self) -> int:
        """Read one whole response; its status."""
        sock = self._sock
        assert sock is not None
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > MAX_HEADER_BYTES:
                raise ValueError("response headers too large")
            self._buffer += await self._chunk(sock)
        status, length, closing = _parse_head(self._buffer[:end])
        body_end = end + 4 + length
        while len(self._buffer) < body_end:
            self._buffer += await self._chunk(sock)
        self._buffer = self._buffer[body_end:]
        if closing:
            self.close()
        return status

    async def _chunk(self, sock: socket.socket) -> bytes:
        data = await self._loop.sock_recv(sock, 65536)
        if not data:
            raise ConnectionResetError("the server closed the connection")
        return data

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


async def _run(spec: dict) -> Result:
    host, port = spec["host"], int(spec["port"])
    if not _loopback(host):
        raise SystemExit(f"open_loop drives loopback servers only, not {host!r}")
    paths: list[str] = spec["paths"]
    rate = float(spec["rate"])
    connections = int(spec["connections"])
    grace_s = float(spec.get("grace_s", 10.0))
    headers = "".join(f"{k}: {v}\r\n" for k, v in spec.get("headers", {}).items())
    requests = [
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{headers}\r\n".encode("latin-1") for path in paths
    ]
    total = len(requests)

    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
    from_schedule: list[float] = []
    from_send: list[float] = []
    late: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    sent = 0

    async def connection() -> None:
        nonlocal sent
        conn = _Connection(loop, host, port)
        while True:
            index, due = await queue.get()
            if index < 0:
                break
            try:
                started = time.perf_counter()
                await conn.send(requests[index])
                sent += 1
                status = await conn.response()
                ended = time.perf_counter()
            except (OSError, ValueError) as ex:
                errors.append(f"{type(ex).__name__}: {ex}"[:200])
                conn.close()
                continue
            late.append(max(0.0, started - due))
            from_schedule.append(ended - due)
            from_send.append(ended - started)
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        conn.close()

    workers = [asyncio.create_task(connection()) for _ in range(connections)]
    start = time.perf_counter() + 0.05
    for index in range(total):
        due = start + index / rate
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        queue.put_nowait((index, due))
    for _ in workers:
        queue.put_nowait((-1, 0.0))
    deadline = start + total / rate + grace_s
    _, pending = await asyncio.wait(workers, timeout=max(0.0, deadline - time.perf_counter()))
    for task in pending:
        task.cancel()
    elapsed = time.perf_counter() - start
    completed = len(from_schedule)
    return Result(
        sent=sent,
        completed=completed,
        unfinished=total - completed - len(errors),
        errors=len(errors),
        error_samples=sorted(set(errors))[:3],
        statuses=statuses,
        elapsed_s=elapsed,
        latency_from_schedule_s=from_schedule,
        latency_from_send_s=from_send,
        send_late_s=late,
        cpu_s=sum(os.times()[:2]),
    )


def main() -> int:
    spec = json.load(sys.stdin)
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        result = loop.run_until_complete(_run(spec))
    finally:
        loop.close()
    json.dump(dataclasses.asdict(result), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
