"""Entry point: ``python -m live`` (run by supervisord as ``live``).

One asyncio process on uvicorn (uvloop for the event loop, httptools for HTTP, wsproto
for WebSocket; keep-alive held for a ping interval + timeout, so a long-polling
client's pong connection stays). SIGTERM: stop taking clients, close the open ones
(they reconnect and resume from their last id), then exit. The fd limit is raised to the hard limit supervisord gives (``minfds``):
every connection is one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import faulthandler
import logging
import resource
import signal
import sys

import uvicorn
import uvloop

from live import collector
from live.app import LiveProgram
from live.settings import load_settings
from live.sio import PING_INTERVAL_S, PING_TIMEOUT_S
from settings.config import EXIT_CONFIG, ConfigError, load_config
from settings.logs import configure_logging
from store.database import Store

log = logging.getLogger("live")

EXIT_UNAVAILABLE = 69  # sysexits.h EX_UNAVAILABLE: the listen address is taken
GRACEFUL_SHUTDOWN_S = 3
LISTEN_BACKLOG = 4096
# A long-polling client POSTs its pong once a ping interval (25 s) on a connection of
# its own: uvicorn's default 5 s keep-alive closed that connection between pongs, so
# each pong raced a close (a client that does not retry then lost its session and its
# ping timed out; issue 12). Under load the gap between pongs runs past 25 s by the
# loop's lag (seconds at 10,000 clients), so it is kept for as long as engine.io itself
# waits for a client: ping interval + ping timeout.
KEEP_ALIVE_S = PING_INTERVAL_S + PING_TIMEOUT_S
FD_RESERVE = 256  # fds live needs besides its clients: the store, logs, ZeroMQ, the listener


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


class _Server(uvicorn.Server):
    """uvicorn, closing live's clients before it waits for connections to end."""

    program: LiveProgram

    async def shutdown(self, sockets=None) -> None:
        await self.program.stop()
        await super().shutdown(sockets)


async def serve(program: LiveProgram, settings) -> int:
    await program.start()
    server = _Server(
        uvicorn.Config(
            program.app,
            host=settings.host,
            port=settings.port,
            http="httptools",
            ws="wsproto",
            lifespan="off",
            loop="uvloop",  # what main() runs serve() on (uvicorn sets no loop of its own here)
            log_level="warning",
            access_log=False,
            backlog=LISTEN_BACKLOG,
            timeout_keep_alive=KEEP_ALIVE_S,
            ws_ping_interval=None,  # engine.io pings on its own
            ws_per_message_deflate=False,  # 10,000 compressions of each event cost more than the bytes
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
            server_header=False,
        )
    )
    server.program = program
    try:
        await server.serve()
    finally:
        await program.close()
    return 0 if server.started else EXIT_UNAVAILABLE


def _already_handled(_signum, _frame) -> None:
    pass


def main() -> int:
    configure_logging("live")
    faulthandler.register(signal.SIGUSR1)  # kill -USR1 <pid>: every thread's stack to the log
    try:
        config = load_config(process="web")
        settings = load_settings(config.mode, config.data_dir)
    except ConfigError as ex:
        for line in ex.lines():
            log.error(line)
        return EXIT_CONFIG
    store = Store(config.database_url, pool_size=config.database_pool_size)
    store.migrate()
    fds = raise_fd_limit()
    if settings.max_connections > fds - FD_RESERVE:
        # Past the fd limit accept() fails and every client sees errors: cap below it.
        log.warning(
            "⚠️ LIVE_MAX_CONNECTIONS=%d is above the fd limit %d: capped at %d (raise minfds / ulimit -Hn)",
            settings.max_connections,
            fds,
            max(1, fds - FD_RESERVE),
        )
        settings = dataclasses.replace(settings, max_connections=max(1, fds - FD_RESERVE))
    program = LiveProgram(config, settings, store)
    collector.tune(settings.gc_thresholds)
    log.info(
        "⚡ Live delivery listening on http://%s:%s (%s mode, up to %d connections, fd limit %d)",
        settings.host,
        settings.port,
        config.mode,
        settings.max_connections,
        fds,
    )
    # uvicorn handles SIGTERM/SIGINT while it serves, then restores these handlers and
    # raises the signal again: with a no-op here main() finishes, logs, and exits 0.
    signal.signal(signal.SIGTERM, _already_handled)
    signal.signal(signal.SIGINT, _already_handled)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        code = runner.run(serve(program, settings))
    if code == EXIT_UNAVAILABLE:
        log.error("❌ live cannot listen on %s:%s", settings.host, settings.port)
    else:
        log.info("live stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
