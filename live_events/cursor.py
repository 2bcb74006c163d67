"""A client's event cursor: ``?since=``, ``Last-Event-ID``, Socket.IO ``auth.since``.

An event's id is its sequence in the store's event log; a cursor is the last id a
client has, a whole number from 0.
"""

from __future__ import annotations

import re
from typing import Any

import falcon

from live_events.errors import ApiError
from wire.codes import INVALID_PARAMETER

MAX_EVENT_ID = 2**63 - 1
_WHOLE_NUMBER = re.compile(r"[0-9]{1,19}")  # ASCII digits only: str.isdigit() also takes "²"


def is_whole_number(text: str) -> bool:
    return _WHOLE_NUMBER.fullmatch(text) is not None


def parse_event_id(raw: Any, code: str, what: str) -> int:
    """A client's event cursor: a whole number from 0; ``ApiError(400, code)`` otherwise."""
    text = str(raw).strip()
    if not is_whole_number(text) or int(text) > MAX_EVENT_ID:
        raise ApiError(400, code, f"{what} must be a whole number from 0")
    return int(text)


def reject_repeated(req: falcon.Request, names: tuple[str, ...] = ("since", "limit", "key")) -> None:
    """400 for a parameter given more than once, as every other endpoint answers."""
    for name in names:
        if isinstance(req.params.get(name), list):
            raise ApiError(400, INVALID_PARAMETER, f"{name} must be given once")
