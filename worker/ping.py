"""What the worker answers to ``ping``: kept free of heavy imports.

The entry point binds and answers heartbeats before it imports the Patreon client and
opens the store (issue 17, P5), so this module may only import what is cheap.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from wire import __version__

if TYPE_CHECKING:
    from patreon_client.edge import EdgeBlock
    from settings.config import WorkerSettings


class PingInfo:
    """What ``ping`` answers: enough to tell one worker process from the next."""

    def __init__(self, config: WorkerSettings, in_flight, clock=time.monotonic):
        self._config = config
        self._in_flight = in_flight
        self._clock = clock
        self._started = clock()
        self._edge: EdgeBlock | None = None

    def watch_edge(self, edge: EdgeBlock) -> None:
        """Report Patreon's edge block with every pong (web's status shows it)."""
        self._edge = edge

    def __call__(self) -> dict[str, Any]:
        return {
            "pong": True,
            "pid": os.getpid(),
            "uptime_s": round(self._clock() - self._started, 3),
            "version": __version__,
            "in_flight": self._in_flight(),
            "mode": self._config.mode,
            "patreon_edge": None if self._edge is None else self._edge.describe(),
        }
