"""A REP socket that echoes every frame: the raw ZeroMQ floor for benchmark 1.

``python -m bench.echo ipc:///path/echo.sock`` binds, prints ``ready`` on stdout, and
echoes until its stdin closes (the benchmark holds the other end, so the echo never
outlives it) or it is terminated.
"""

from __future__ import annotations

import sys
import threading

import zmq

POLL_INTERVAL_MS = 100


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].startswith(("ipc://", "tcp://")):
        print("usage: python -m bench.echo ipc://PATH|tcp://HOST:PORT", file=sys.stderr)
        return 2
    context = zmq.Context()
    sock = context.socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(argv[0])
    parent_gone = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), parent_gone.set()), daemon=True).start()
    print("ready", flush=True)
    try:
        while not parent_gone.is_set():
            if sock.poll(POLL_INTERVAL_MS, zmq.POLLIN):
                sock.send(sock.recv(copy=False), copy=False)
    finally:
        sock.close(linger=0)
        context.term()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
