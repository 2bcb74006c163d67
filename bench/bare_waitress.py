"""The floor of benchmark 8: waitress serving one fixed JSON answer, nothing else.

``python -m bench.bare_waitress PORT THREADS`` serves ``{"allowed": true, ...}`` on
127.0.0.1 with the thread count and the read-ahead web uses (``web.__main__``), no
Falcon, no store, no logging. Driven by the same generator at the same rate as the
bridge, it shows what this machine and this server allow at all: latency the
bridge cannot go below whatever its own code does.
"""

from __future__ import annotations

import logging
import sys

import waitress

BODY = b'{"allowed": true, "reason": "ACTIVE_TIER"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


def main(argv: list[str]) -> int:
    port, threads = int(argv[0]), int(argv[1])
    logging.getLogger("waitress").setLevel(logging.ERROR)  # its queue-depth warnings are load, not news
    waitress.serve(app, host="127.0.0.1", port=port, threads=threads, channel_request_lookahead=1, _quiet=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
