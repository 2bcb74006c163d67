"""The wake-up: web tells live "an event was committed" over ZeroMQ.

live binds a PULL socket on ``LIVE_NOTIFY_ENDPOINT``; each web process connects a PUSH
socket to it and sends after each commit. PUSH, not PUB: PUB drops what it sends
before the subscription has travelled (the first wake-up of every web process), PUSH
queues it on the pipe. The message carries nothing but the event id (the store is the
source): a lost or late wake-up only delays delivery to live's fallback poll
(``LIVE_POLL_INTERVAL_S``), so sending never blocks and never fails a request: with
live down, a few are queued (``SNDHWM``) and the rest dropped.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import zmq

log = logging.getLogger(__name__)

QUEUED_WAKEUPS = 16  # while live is down: enough to wake it once it is back

_publishers: dict[str, WakeupPublisher] = {}
_publishers_lock = threading.Lock()


class WakeupPublisher:
    """web's side: thread-safe (waitress threads share it), never blocks."""

    def __init__(self, endpoint: str, context: zmq.Context | None = None):
        self.endpoint = endpoint
        self._socket = (context or zmq.Context.instance()).socket(zmq.PUSH)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.setsockopt(zmq.SNDHWM, QUEUED_WAKEUPS)
        self._socket.connect(endpoint)
        self._lock = threading.Lock()

    def committed(self, event_id: int) -> None:
        try:
            with self._lock:
                self._socket.send(str(event_id).encode(), zmq.NOBLOCK)
        except zmq.ZMQError as ex:  # a full queue or a closed context: the poll catches up
            log.debug("live wake-up not sent: %s", ex)

    def close(self) -> None:
        with self._lock:
            self._socket.close(0)


def publisher_for(data_dir: Path) -> WakeupPublisher | None:
    """The process's publisher for a store folder, made on first use; None when the
    live settings are unusable (then live still delivers, after its poll)."""
    key = str(data_dir)
    with _publishers_lock:
        if key not in _publishers:
            from live.settings import ConfigError, endpoint_setting

            try:
                _publishers[key] = WakeupPublisher(endpoint_setting(Path(data_dir)))
            except (ConfigError, zmq.ZMQError) as ex:
                log.warning("live wake-ups are off (delivery waits for live's poll): %s", ex)
                _publishers[key] = None  # type: ignore[assignment]
        return _publishers[key]


def committed(data_dir: Path, event_id: int) -> None:
    """web's hook after a webhook is committed. Never raises."""
    try:
        publisher = publisher_for(data_dir)
        if publisher is not None:
            publisher.committed(event_id)
    except Exception:  # a wake-up must never fail the delivery that was just stored
        log.exception("live wake-up failed")


class WakeupListener:
    """live's side: an asyncio PULL socket; ``wait`` returns on a wake-up or a timeout."""

    def __init__(self, endpoint: str):
        import zmq.asyncio

        self.endpoint = endpoint
        self._context = zmq.asyncio.Context()
        self._socket = self._context.socket(zmq.PULL)
        self._socket.setsockopt(zmq.LINGER, 0)
        if endpoint.startswith("ipc://"):
            Path(endpoint[len("ipc://") :]).unlink(missing_ok=True)  # a stale socket of a killed live
        self._socket.bind(endpoint)

    async def wait(self, timeout_s: float) -> bool:
        if await self._socket.poll(timeout_s * 1000) == 0:
            return False
        while await self._socket.poll(0):  # drain: several commits, one read of the store
            await self._socket.recv()
        return True

    def close(self) -> None:
        self._socket.close(0)
        self._context.term()
