"""The wake-up: live learns "an event was committed" without polling the store.

web's side is here (``WakeupPublisher``, ``committed``); live's listeners are
``live.notify``.

SQLite (one host): web tells live over ZeroMQ, below. PostgreSQL (any number of
hosts): a trigger on the event log notifies ``bridge_events`` at each commit
(store/migrations/versions/0002), and ``live.notify.PostgresWakeupListener`` LISTENs, so an event
accepted by any host's web (or derived by any worker) wakes the live programs of every
host. Either way the store stays the source and live's poll the fallback.

Each live process binds a PULL socket on its own endpoint (``LIVE_NOTIFY_ENDPOINT``,
or ``var/live-notify-N.sock`` per process for ``LIVE_PROCESSES``); each web process
connects one PUSH socket to every one of them and sends on each after a commit, so
every live process is woken (one PUSH socket connected to several would deal the
messages out round-robin instead). PUSH, not PUB: PUB drops what it sends
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

from live_events.settings import endpoint_settings
from settings.config import ConfigError

log = logging.getLogger(__name__)

QUEUED_WAKEUPS = 16  # while live is down: enough to wake it once it is back

_publishers: dict[str, WakeupPublisher] = {}
_publishers_lock = threading.Lock()


class WakeupPublisher:
    """web's side: one PUSH socket per live process; thread-safe (waitress threads
    share it), never blocks."""

    def __init__(self, endpoints: str | tuple[str, ...], context: zmq.Context | None = None):
        self.endpoints = (endpoints,) if isinstance(endpoints, str) else tuple(endpoints)
        context = context or zmq.Context.instance()
        self._sockets = []
        for endpoint in self.endpoints:
            sock = context.socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, QUEUED_WAKEUPS)
            sock.connect(endpoint)
            self._sockets.append(sock)
        self._lock = threading.Lock()

    def committed(self, event_id: int) -> None:
        message = str(event_id).encode()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.send(message, zmq.NOBLOCK)
                # A full queue (that live process is down) or a closed context: its poll catches up.
                except zmq.ZMQError as ex:
                    log.debug("live wake-up not sent: %s", ex)

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets:
                sock.close(0)


def publisher_for(data_dir: Path) -> WakeupPublisher | None:
    """The process's publisher for a store folder, made on first use; None when the
    live settings are unusable (then live still delivers, after its poll)."""
    key = str(data_dir)
    with _publishers_lock:
        if key not in _publishers:
            try:
                _publishers[key] = WakeupPublisher(endpoint_settings(Path(data_dir)))
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
