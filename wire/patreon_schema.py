"""What Patreon's API v2 accepts, as far as we check it before asking: resource
types, id formats, the query parameters of each kind of read, webhook triggers.

Web validates every request with it and passes the worker a normalized dict; the
worker checks that dict again at its own boundary (a bad frame must not become a
malformed Patreon request). ``ParamError`` carries a stable code for the 400.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from wire.codes import (
    INVALID_CURSOR,
    INVALID_FIELDS,
    INVALID_INCLUDE,
    INVALID_PAGE_COUNT,
    INVALID_PARAMETER,
    INVALID_SORT,
    INVALID_TRIGGERS,
    INVALID_URI,
    UNKNOWN_PARAMETER,
)

RESOURCE_TYPES = frozenset(
    {
        "address",
        "benefit",
        "campaign",
        "client",
        "deliverable",
        "goal",
        "media",
        "member",
        "pledge-event",
        "post",
        "tier",
        "user",
        "webhook",
    }
)

# Triggers a webhook can be created with; legacy v1 triggers still arrive on old ones.
V2_TRIGGERS = (
    "members:create",
    "members:update",
    "members:delete",
    "members:pledge:create",
    "members:pledge:update",
    "members:pledge:delete",
    "posts:publish",
    "posts:update",
    "posts:delete",
)
LEGACY_TRIGGERS = ("pledges:create", "pledges:update", "pledges:delete")

# Every pattern here is used with ``fullmatch``: ``$`` would accept a trailing newline.
CAMPAIGN_ID = re.compile(r"[0-9]{1,20}")
POST_ID = re.compile(r"[0-9]{1,20}")
MEMBER_ID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
WEBHOOK_ID = re.compile(r"[0-9]{1,20}")

MAX_PAGE_COUNT = 1000
MAX_PAGE_COUNT_WITH_PLEDGE_HISTORY = 500
MAX_CURSOR_CHARS = 512
MAX_LIST_ITEMS = 50
MAX_URI_CHARS = 2048

# Which query parameters each kind of read passes on to Patreon.
SINGLE = frozenset({"include", "fields"})
LISTING = frozenset({"include", "fields", "sort", "page[count]", "page[cursor]"})

_FIELDS_KEY = re.compile(r"fields\[([a-z-]{1,40})\]")
_NAME = re.compile(r"[a-z_]{1,64}")
_INCLUDE_PATH = re.compile(r"[a-z_]{1,64}(\.[a-z_]{1,64}){0,4}")
_SORT_ITEM = re.compile(r"-?[a-z_]{1,64}")
_CURSOR = re.compile(r"[A-Za-z0-9_\-=.~+/%:]*")
_PAGE_COUNT = re.compile(r"[0-9]{1,4}")  # ASCII digits: str.isdigit() also takes "²"
_URI = re.compile(r"https?://[^\s/?#]+[^\s]*")


class ParamError(ValueError):
    """A parameter Patreon would not take (or we will not send): a 400 with ``code``."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _comma_list(key: str, value: str, pattern: re.Pattern, code: str, what: str) -> list[str]:
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items) and value != "":
        raise ParamError(code, f"{key}: empty item in {value[:80]!r}")
    items = [item for item in items if item]
    if len(items) > MAX_LIST_ITEMS:
        raise ParamError(code, f"{key}: at most {MAX_LIST_ITEMS} items")
    bad = [item for item in items if not pattern.fullmatch(item)]
    if bad:
        raise ParamError(code, f"{key}: {bad[0][:80]!r} is not a valid {what}")
    return list(dict.fromkeys(items))


def normalize_query(params: Mapping[str, Any], allowed: Iterable[str]) -> dict[str, str]:
    """Check Patreon query parameters; return them as a plain ``{name: text}`` dict.

    ``allowed`` names the parameters this read takes (``"fields"`` stands for every
    ``fields[<type>]``). Raises ``ParamError`` on the first problem.
    """
    allowed = frozenset(allowed)
    normalized: dict[str, str] = {}
    for key, value in params.items():
        if not isinstance(key, str):
            raise ParamError(UNKNOWN_PARAMETER, "parameter names must be text")
        if isinstance(value, list | tuple):
            raise ParamError(INVALID_PARAMETER, f"{key[:60]}: give it once, not {len(value)} times")
        if not isinstance(value, str):
            raise ParamError(INVALID_PARAMETER, f"{key[:60]}: must be text")
        fields = _FIELDS_KEY.fullmatch(key)
        if fields and "fields" in allowed:
            if fields.group(1) not in RESOURCE_TYPES:
                raise ParamError(INVALID_FIELDS, f"{key}: {fields.group(1)!r} is not a Patreon resource type")
            normalized[key] = ",".join(_comma_list(key, value, _NAME, INVALID_FIELDS, "attribute name"))
        elif key == "include" and key in allowed:
            normalized[key] = ",".join(
                _comma_list(key, value, _INCLUDE_PATH, INVALID_INCLUDE, "include path")
            )
        elif key == "sort" and key in allowed:
            normalized[key] = ",".join(_comma_list(key, value, _SORT_ITEM, INVALID_SORT, "sort key"))
        elif key == "page[count]" and key in allowed:
            if not _PAGE_COUNT.fullmatch(value) or not 1 <= int(value) <= MAX_PAGE_COUNT:
                raise ParamError(
                    INVALID_PAGE_COUNT, f"page[count] must be a whole number from 1 to {MAX_PAGE_COUNT}"
                )
            normalized[key] = str(int(value))
        elif key == "page[cursor]" and key in allowed:
            if not value or len(value) > MAX_CURSOR_CHARS or not _CURSOR.fullmatch(value):
                raise ParamError(
                    INVALID_CURSOR,
                    f"page[cursor] must be a cursor from meta.pagination.cursors.next (up to {MAX_CURSOR_CHARS} chars)",
                )
            normalized[key] = value
        else:
            shown = key if len(key) <= 60 else key[:60] + "..."
            raise ParamError(UNKNOWN_PARAMETER, f"unknown query parameter {shown!r}")
    return normalized


def check_id(value: Any, pattern: re.Pattern, code: str, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ParamError(code, f"{what} is malformed")
    return value


def check_triggers(value: Any) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ParamError(INVALID_TRIGGERS, "triggers must be a non-empty list")
    if not all(isinstance(t, str) for t in value):
        raise ParamError(INVALID_TRIGGERS, "triggers must be text")
    unknown = [t for t in value if t not in V2_TRIGGERS]
    if unknown:
        raise ParamError(
            INVALID_TRIGGERS,
            f"unknown trigger {unknown[0][:60]!r}; Patreon's are: {', '.join(V2_TRIGGERS)}",
        )
    return list(dict.fromkeys(value))


def check_uri(value: Any) -> str:
    if not isinstance(value, str) or len(value) > MAX_URI_CHARS or not _URI.fullmatch(value):
        raise ParamError(INVALID_URI, "uri must be an absolute http(s) URL without spaces")
    return value
