"""Entry point: ``python -m web`` (run by supervisord as patreon:web).

waitress has no SIGTERM handler of its own: a plain SIGTERM would cut in-flight
requests. We turn SIGTERM into SystemExit, which waitress handles like SIGINT: it
stops accepting, lets running requests finish (up to 5 s), then exits.
"""

from __future__ import annotations

import logging
import signal
import sys

from waitress.server import create_server

from web.app import create_app
from worker.client import WorkerClient
from worker.config import EXIT_CONFIG, ConfigError, load_config
from worker.logs import configure_logging
from worker.store import Store

log = logging.getLogger("web")

MAX_REQUEST_BODY_BYTES = 1024 * 1024  # 1 MiB: the webhook limit, the largest body we take


def _stop(signum, _frame):
    log.info("received %s: finishing in-flight requests", signal.Signals(signum).name)
    raise SystemExit(0)


def main() -> int:
    configure_logging("web")
    try:
        config = load_config(process="web")
    except ConfigError as ex:
        for line in ex.lines():
            log.error(line)
        return EXIT_CONFIG
    store = Store(config.store_path)
    store.migrate()
    worker = WorkerClient(config.worker_endpoint)
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
    server = create_server(
        app,
        host=config.host,
        port=config.port,
        threads=config.web_threads,
        ident="patreon-bridge",
        max_request_body_size=MAX_REQUEST_BODY_BYTES,
        clear_untrusted_proxy_headers=True,
        **proxy,
    )
    signal.signal(signal.SIGTERM, _stop)
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
