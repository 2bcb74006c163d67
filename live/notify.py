"""live's side of the wake-up (``live_events.wakeup`` has the design and web's side).

SQLite: each live process binds a PULL socket on its endpoint and wakes on web's
PUSH. PostgreSQL: ``PostgresWakeupListener`` LISTENs on the event log's trigger
(store/migrations/versions/0002), so a commit on any host wakes every live program.
Either way the store stays the source and live's poll the fallback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)


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


class PostgresWakeupListener:
    """live's side on a PostgreSQL store: LISTEN on ``NOTIFY_CHANNEL`` over its own
    connection. A lost connection is made again at the next ``wait``; meanwhile (and
    for any notification missed in between) live's poll delivers."""

    def __init__(self, database_url: str):
        self._url = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        self._conn = None

    async def _listening(self):
        import psycopg

        from store.webhook_events import NOTIFY_CHANNEL

        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True, connect_timeout=2)
            await self._conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
        return self._conn

    async def wait(self, timeout_s: float) -> bool:
        import psycopg

        try:
            conn = await self._listening()
            woken = False
            async for _ in conn.notifies(timeout=timeout_s, stop_after=1):
                woken = True
            if woken:  # drain: several commits, one read of the store
                async for _ in conn.notifies(timeout=0.001):
                    pass
            return woken
        except psycopg.Error as ex:
            log.warning("live wake-ups from PostgreSQL are off until it is back (polling): %s", ex)
            await self.aclose()
            await asyncio.sleep(timeout_s)
            return False

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            with contextlib.suppress(Exception):
                await conn.close()

    def close(self) -> None:
        """Nothing to do synchronously; ``aclose`` closes the connection."""
