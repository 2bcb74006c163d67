"""The worker's action table: every handler is attached here, by name.

``build_registry`` is the one place that decides which actions a worker serves; the
Patreon actions live in their own modules and are attached to the same registry.
"""

from __future__ import annotations

import os
import time
from typing import Any

from worker import __version__, protocol
from worker.config import Config


class PingInfo:
    """What ``ping`` answers: enough to tell one worker process from the next."""

    def __init__(self, config: Config, in_flight, clock=time.monotonic):
        self._config = config
        self._in_flight = in_flight
        self._clock = clock
        self._started = clock()

    def __call__(self) -> dict[str, Any]:
        return {
            "pong": True,
            "pid": os.getpid(),
            "uptime_s": round(self._clock() - self._started, 3),
            "version": __version__,
            "in_flight": self._in_flight(),
            "mode": self._config.mode,
        }


def _debug_sleep(data: dict[str, Any], ctx: protocol.CallContext) -> dict[str, Any]:
    """Test-only: block a pool thread for ``ms`` milliseconds, like a slow Patreon call."""
    ms = data.get("ms")
    if not isinstance(ms, int) or isinstance(ms, bool) or not 0 <= ms <= 20_000:
        raise protocol.ActionError(protocol.INVALID_DATA, "ms must be an integer from 0 to 20000")
    time.sleep(ms / 1000.0)
    return {"slept_ms": ms}


def build_registry(config: Config, ping: PingInfo) -> protocol.ActionRegistry:
    registry = protocol.ActionRegistry()
    # ping is answered inline by the server loop; registering it here too keeps
    # dispatch() complete for callers that do not go through the loop.
    registry.register("ping", lambda data, ctx: ping())
    if config.test_actions:
        registry.register("debug.sleep", _debug_sleep)
    return registry
