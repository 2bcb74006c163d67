"""Entry point: ``python -m worker`` (run by supervisord as patreon:worker_00,
patreon:worker_01, ...: ``numprocs`` of them, each binding its own endpoint).

Configuration is checked before the heavy imports (ZeroMQ, requests, the Patreon
client): a worker with bad configuration must exit well within supervisord's
``startsecs`` even on a loaded machine, so that it counts as a failed start and ends
FATAL after ``startretries`` instead of being restarted forever.

Then the socket is bound and the loop answers pings at once, on the main thread (so
signals reach it as before), while ``Startup`` imports the Patreon client, opens the
store and builds the registry on a thread of its own (issue 17, P5: a restarted worker
is back for web as soon as it binds). Calls that arrive meanwhile wait for the
registry within their deadline (``worker.server``). A store that cannot be opened
(missing or wrong encryption key) still exits with ``EXIT_CONFIG``, just after the
bind instead of before it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
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

    from worker.ping import PingInfo
    from worker.server import WorkerServer

    endpoint = config.endpoints[config.worker_process_num]  # this process's own
    curve = None
    if config.worker_curve_dir:
        from wire.curve import KeysMissing, ServerSecurity

        try:
            curve = ServerSecurity(config.worker_curve_dir, zmq.Context.instance())
        except KeysMissing as ex:
            log.error("❌ Configuration error: PATREON_WORKER_CURVE_DIR: %s", ex)
            return EXIT_CONFIG
    # Bind and answer pings before the heavy part (issue 17, P5): web sees a restarted
    # worker ~150 ms sooner; calls that come meanwhile wait for the registry.
    ping = PingInfo(config, in_flight=lambda: server.in_flight)
    server = WorkerServer(endpoint, None, threads=config.worker_threads, ping=ping, curve=curve)
    try:
        server.bind()
    except (zmq.ZMQError, OSError) as ex:
        log.error("❌ Patreon service error: %s", ex)
        return EXIT_UNAVAILABLE
    startup = Startup(config, server, ping, endpoint)

    def on_signal(signum, _frame):
        log.info("received %s: finishing in-flight work", signal.Signals(signum).name)
        server.stop()
        startup.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    startup.start()
    server.serve_forever()
    startup.stop()
    startup.join_components()
    if startup.exit_code:
        return startup.exit_code
    if server.in_flight:
        leave_unfinished(server.in_flight)
    log.info("Patreon service stopped")
    return 0


class Startup(threading.Thread):
    """The worker's heavy start-up, while the loop already answers pings: the Patreon
    client, the store (with its migration check), the registry, the background jobs.

    A failure logs why, sets ``exit_code`` and abandons the server (its loop ends, the
    process exits with that code). ``stop`` (a signal) stops whatever was started; a
    start-up still running then starts nothing more.
    """

    def __init__(self, config, server, ping, endpoint: str):
        # daemon: a start-up stuck in the store's open never holds the process's exit
        super().__init__(name="worker-startup", daemon=True)
        self._config, self._server, self._ping, self._endpoint = config, server, ping, endpoint
        self._lock = threading.RLock()  # stop() runs in a signal handler too
        self._stopped = False
        self._components: list = []
        self.exit_code = 0

    def run(self) -> None:
        try:
            self._exit_code_or_start()
        except Exception:
            log.exception("❌ Patreon service error: start-up failed")
            self._fail(EXIT_UNAVAILABLE)

    def _fail(self, code: int) -> None:
        self.exit_code = code
        self._server.abandon()

    def _exit_code_or_start(self) -> None:
        import zmq

        from store.encryption import KeyMissing, UndecryptableValue, open_store
        from worker.actions import build_registry
        from worker.event_consumer import EventConsumer
        from worker.lease_holder import worker_holder
        from worker.members import MemberPrograms
        from worker.patreon_actions import build_actions
        from worker.token_sweep import OrphanTokenSweeper

        config = self._config
        try:
            store = open_store(config, pool_size=config.database_pool_size)
        except (KeyMissing, UndecryptableValue) as ex:
            log.error("❌ Configuration error: %s", ex)
            return self._fail(EXIT_CONFIG)
        try:
            patreon = build_actions(config, store)  # one rate-limited Patreon client for everything
            programs = MemberPrograms(config, store, patreon.api)  # refresh + sync threads
            registry = build_registry(
                config, self._ping, store=store, patreon=patreon, request_sync=programs.sync.request
            )
        except (zmq.ZMQError, OSError) as ex:
            log.error("❌ Patreon service error: %s", ex)
            return self._fail(EXIT_UNAVAILABLE)
        # stored webhook events: member hints -> the refresh queue
        consumer = EventConsumer(
            store,
            on_refresh_wanted=programs.refresher.wake,
            on_sync_wanted=lambda: programs.sync.request("legacy pledge of an unknown member"),
            holder=worker_holder(config),  # one consumer at a time across workers
        )
        # session tokens whose session has ended; one sweep per interval across workers
        sweeper = OrphanTokenSweeper(store, holder=worker_holder(config))
        with self._lock:
            if self._stopped:
                return
            self._server.attach(registry)
            if config.mode == "sandbox":
                log.warning(
                    "🧪 SANDBOX MODE: no Patreon credentials set; talking to %s", config.patreon_api_base
                )
            log.info("✅ Patreon service initialized successfully (%s mode, %s)", config.mode, self._endpoint)
            for component in (consumer, programs, sweeper):
                component.start()
                self._components.append(component)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for component in self._components:
                component.stop()

    def join_components(self) -> None:
        """Wait for the background jobs that take a stop (the sweeper is a daemon)."""
        for component in self._components[:2]:
            component.join()


if __name__ == "__main__":
    sys.exit(main())
