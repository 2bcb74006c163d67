"""Logging set-up for the entry points, and the request id every line carries.

Each process logs to stderr (supervisord captures and rotates it). The HTTP request
id lives in a context variable: web sets it per request, the worker per action, so a
request can be followed from one log into the other.

Every line's message goes through ``escape_controls``: a path, a header or a name from
a request can carry CR, LF, NUL or other control characters, and written raw they
would forge log lines (issue 16, finding 4). A traceback that follows a message keeps
its own line breaks: it is ours, not the client's.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import logging.handlers
import queue
import sys

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0, DEL, C1, and the Unicode line and paragraph separators some viewers break on.
_CONTROLS = {c: _NAMED.get(chr(c), f"\\x{c:02x}") for c in [*range(0x20), *range(0x7F, 0xA0)]}
_CONTROLS.update({0x2028: "\\u2028", 0x2029: "\\u2029"})


def escape_controls(text: str) -> str:
    """``text`` with every control character written as a visible escape (``\\n``, ``\\x00``)."""
    return text.translate(_CONTROLS)


class EscapingFormatter(logging.Formatter):
    """A Formatter whose message part can never hold a line break or another control."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class _LocklessQueueHandler(logging.handlers.QueueHandler):
    """A QueueHandler without the handler lock: putting on a SimpleQueue is thread-safe
    by itself, and under web's request threads that lock was contended on every
    access line (issue 11: 21% of web's samples waiting on it at 1,000 checks/s)."""

    def createLock(self) -> None:
        self.lock = None

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        prepared = super().prepare(record)
        prepared.stack_info = None  # already in the formatted line
        return prepared


def configure_logging(process: str, level: int = logging.INFO, *, queued: bool = False) -> None:
    """Lines to stderr. ``queued`` (web): request threads format a line and put it on a
    queue; one thread writes them (``logging.handlers.QueueListener``), so no request
    waits for another's write to the pipe. What is queued is written at exit."""
    line = EscapingFormatter(f"%(asctime)s {process} %(levelname)s %(name)s [%(request_id)s] %(message)s")
    stream = logging.StreamHandler(sys.stderr)
    if queued:
        records: queue.SimpleQueue = queue.SimpleQueue()
        handler: logging.Handler = _LocklessQueueHandler(records)
        # The request id and the whole line are made in the calling thread (the id is
        # a context variable of that thread); the writer writes the finished line.
        stream.setFormatter(logging.Formatter("%(message)s"))
        listener = logging.handlers.QueueListener(records, stream)
        listener.start()
        atexit.register(listener.stop)
    else:
        handler = stream
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(line)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # urllib3 logs full URLs at DEBUG; keep it quiet so no query string reaches a log.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
