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

import contextvars
import logging
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


def configure_logging(process: str, level: int = logging.INFO) -> None:
    # Our lines name no source file, thread or process, so logging need not look them
    # up for every record (the logging HOWTO's "Optimization"): a third of the cost of
    # web's access line, one per request (issue 11: 50 -> 33 us a line).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    handler.setFormatter(
        EscapingFormatter(f"%(asctime)s {process} %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # urllib3 logs full URLs at DEBUG; keep it quiet so no query string reaches a log.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
