"""Entry point: ``python -m worker`` (run by supervisord as patreon:worker_00,
patreon:worker_01, ...: ``numprocs`` of them, each binding its own endpoint).

Configuration is checked before the heavy imports (ZeroMQ, requests, the Patreon
client): a worker with bad configuration must exit well within supervisord's
``startsecs`` even on a loaded machine, so that it counts as a failed start and ends
FATAL after ``startretries`` instead of being restarted forever.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable

from settings.config import EXIT_CONFIG, ConfigError, load_settings
from settings.logs import configure_logging

log = logging.getLogger("worker")

EXIT_UNAVAILABLE = 69  # sysexits.h EX_UNAVAILABLE: the endpoint or the store cannot be used


def leave_unfinished(unfinished: int, exit_now: Callable[[int], None] = os._exit) -> None:
    """Exit at once, not waiting for pool threads still inside a call.

    Python joins the executor's threads at exit: one stuck in a long Patreon call
    would hold the process past supervisord's stopwaitsecs and get it SIGKILLed.
    Their callers got no reply either way; the store's transactions are atomic.
    """
    log.warning("Patreon service stopped with %d request(s) unfinished: leaving without them", unfinished)
    logging.shutdown()  # os._exit skips the atexit flush
    exit_now(0)


def main() -> int:
    configure_logging("worker")
    log.info("🔧 Initializing Patreon service...")
    try:
        config = load_settings("worker")
    except ConfigError as ex:
        for line in ex.lines():
            log.error(line)
        log.error("❌ Patreon service error: invalid configuration (exit %d)", EXIT_CONFIG)
        return EXIT_CONFIG

    import zmq

    from store.encryption import KeyMissing, UndecryptableValue, open_store
    from wire.curve import KeysMissing, ServerSecurity
    from worker.actions import PingInfo, build_registry
    from worker.event_consumer import EventConsumer
    from worker.lease_holder import worker_holder
    from worker.members import MemberPrograms
    from worker.patreon_actions import build_actions
    from worker.server import WorkerServer
    from worker.token_sweep import OrphanTokenSweeper

    try:
        store = open_store(config, pool_size=config.database_pool_size)
    except (KeyMissing, UndecryptableValue) as ex:
        log.error("❌ Configuration error: %s", ex)
        return EXIT_CONFIG
    endpoint = config.endpoints[config.worker_process_num]  # this process's own
    try:
        curve = ServerSecurity(config.worker_curve_dir, zmq.Context.instance()) if config.worker_curve_dir else None
    except KeysMissing as ex:
        log.error("❌ Configuration error: PATREON_WORKER_CURVE_DIR: %s", ex)
        return EXIT_CONFIG
    try:
        ping = PingInfo(config, in_flight=lambda: server.in_flight)
        patreon = build_actions(config, store)  # one rate-limited Patreon client for everything
        programs = MemberPrograms(config, store, patreon.api)  # refresh + sync threads
        server = WorkerServer(
            endpoint,
            build_registry(config, ping, store=store, patreon=patreon, request_sync=programs.sync.request),
            threads=config.worker_threads,
            ping=ping,
            curve=curve,
        )
        server.bind()
    except (zmq.ZMQError, OSError) as ex:
        log.error("❌ Patreon service error: %s", ex)
        return EXIT_UNAVAILABLE
    # stored webhook events: member hints -> the refresh queue
    consumer = EventConsumer(
        store,
        on_refresh_wanted=programs.refresher.wake,
        on_sync_wanted=lambda: programs.sync.request("legacy pledge of an unknown member"),
        holder=worker_holder(config),  # one consumer at a time across workers
    )
    # session tokens whose session has ended; one sweep per interval across workers
    sweeper = OrphanTokenSweeper(store, holder=worker_holder(config))

    def on_signal(signum, _frame):
        log.info("received %s: finishing in-flight work", signal.Signals(signum).name)
        server.stop()
        consumer.stop()
        programs.stop()
        sweeper.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if config.mode == "sandbox":
        log.warning("🧪 SANDBOX MODE: no Patreon credentials set; talking to %s", config.patreon_api_base)
    log.info("✅ Patreon service initialized successfully (%s mode, %s)", config.mode, endpoint)
    consumer.start()
    programs.start()
    sweeper.start()
    server.serve_forever()
    consumer.join()
    programs.join()
    if server.in_flight:
        leave_unfinished(server.in_flight)
    log.info("Patreon service stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
