"""Entry point: ``python -m web`` (run by supervisord as patreon:web).

waitress has no SIGTERM handler of its own: a plain SIGTERM would cut in-flight
requests. We turn SIGTERM into SystemExit, which waitress handles like SIGINT: it
stops accepting, lets running requests finish, then exits. waitress itself waits only
5 s for them; ``_GracefulDispatcher`` waits up to ``STOP_GRACE_S`` instead.
"""

from __future__ import annotations

import logging
import signal
import sys

from waitress.task import ThreadedTaskDispatcher

from settings.config import EXIT_CONFIG, ConfigError, load_settings
from settings.logs import configure_logging
from store import group_commit
from store.database import WEB_WRITE_TIMEOUT_S
from store.encryption import KeyMissing, UndecryptableValue, open_store
from web.app import create_app
from web.server_errors import JsonErrorResponses, create_json_server
from wire.curve import KeysMissing, client_options
from wire.pool import WorkerPool

log = logging.getLogger("web")

# waitress's own ceiling on a request body. The routes enforce their own, smaller limits
# (1 MiB for webhooks) with a JSON 413 of their own; past this ceiling waitress refuses
# the body from its Content-Length, before reading it, with web.server_errors' JSON 413.
MAX_REQUEST_BODY_BYTES = 4 * 1024 * 1024
# Open connections waitress accepts before it stops accepting: keep-alive clients hold
# theirs between requests (waitress's default is 100). Live streams are the live program's.
CONNECTION_LIMIT = 1000
# How long a stopping web process lets running requests finish: below supervisord's
# stopwaitsecs for web (10 s), which would SIGKILL it, and as long as the worker's own
# stop grace (worker.server.STOP_GRACE_S), so a worker call in flight can still answer.
STOP_GRACE_S = 8.0
EXIT_UNAVAILABLE = 69  # sysexits.h EX_UNAVAILABLE: the listen address is taken


class _GracefulDispatcher(ThreadedTaskDispatcher):
    """waitress's thread pool, whose shutdown (run by ``server.run()`` on SystemExit)
    waits ``STOP_GRACE_S`` for running requests instead of its fixed 5 s."""

    def shutdown(self, cancel_pending: bool = True, timeout: float = STOP_GRACE_S) -> bool:
        return super().shutdown(cancel_pending=cancel_pending, timeout=timeout)


def _stop(signum, _frame):
    log.info("received %s: finishing in-flight requests", signal.Signals(signum).name)
    raise SystemExit(0)


def main() -> int:
    configure_logging("web")
    try:
        config = load_settings("web")
    except ConfigError as ex:
        for line in ex.lines():
            log.error(line)
        return EXIT_CONFIG
    try:
        # A short write budget: a locked store answers 503 at once instead of holding threads.
        store = open_store(
            config,
            write_timeout_s=WEB_WRITE_TIMEOUT_S,
            auto_checkpoint=False,
            pool_size=config.database_pool_size,
            pool_timeout_s=config.web_database_pool_timeout_s,
            statement_timeout_s=config.web_database_statement_timeout_s,
        )
    except (KeyMissing, UndecryptableValue) as ex:
        log.error("❌ Configuration error: %s", ex)
        return EXIT_CONFIG
    # Writers waiting on the store may hold at most a quarter of the threads.
    group_commit.for_store(store).max_waiting = max(group_commit.DEFAULT_MAX_WAITING, config.web_threads // 4)
    try:
        curve = client_options(config.worker_curve_dir)
    except KeysMissing as ex:
        log.error("❌ Configuration error: PATREON_WORKER_CURVE_DIR: %s", ex)
        return EXIT_CONFIG
    worker = WorkerPool(config.endpoints, curve=curve)  # every worker, each with its heartbeat
    worker.start()
    app = create_app(config, worker, store)
    proxy = {}
    if config.trusted_proxy:
        # Only the reverse proxy in front of us may set these (deploy/nginx.conf).
        proxy = {
            "trusted_proxy": config.trusted_proxy,
            "trusted_proxy_count": 1,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"},
        }
    dispatcher = _GracefulDispatcher()
    dispatcher.set_thread_count(config.web_threads)
    try:
        # JSON errors from waitress's parser too, and any plain-text error (web.server_errors).
        server = create_json_server(
            JsonErrorResponses(app),
            _dispatcher=dispatcher,
            host=config.host,
            port=config.port,
            threads=config.web_threads,
            ident="patreon-bridge",
            max_request_body_size=MAX_REQUEST_BODY_BYTES,
            connection_limit=CONNECTION_LIMIT,
            clear_untrusted_proxy_headers=True,
            # Keep reading while a request runs, so a closed client is noticed
            # (environ["waitress.client_disconnected"]).
            channel_request_lookahead=1,
            **proxy,
        )
    except OSError as ex:
        # The port is taken (another stack, or a stale process): one clear line, and
        # supervisord ends the program FATAL after its retries instead of a traceback.
        log.error("❌ web cannot listen on %s:%s: %s", config.host, config.port, ex.strerror or ex)
        dispatcher.shutdown(timeout=1)
        worker.close()
        return EXIT_UNAVAILABLE

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)  # Ctrl-C in a terminal stops the same way
    if config.mode == "sandbox":
        log.warning("🧪 SANDBOX MODE: Patreon is the local sandbox at %s", config.patreon_api_base)
    log.info("🚀 Web server listening on http://%s:%s (%s mode)", config.host, config.port, config.mode)
    try:
        server.run()
    finally:
        worker.close()
    log.info("web server stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
