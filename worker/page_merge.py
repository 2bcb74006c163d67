"""Merging the pages of a listing (``all=true``) without re-encoding them.

A page is scanned once, as text: each top-level value is decoded, but the resources
of ``data`` and ``included`` are kept as the exact JSON text Patreon sent, next to
their ``(type, id)`` key. The merged document is those texts joined, so a 10,000
member listing costs one decode of each page and no encode of its members (the
profile of issue 17 showed the decode and, above all, the ``json.dumps`` of the
merged document as most of the worker's time for ``all=true``).

Every value is decoded on the way, so a page that is not valid JSON is still refused.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from patreon_client.http import upstream_error

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
SPANNED = ("data", "included")


@dataclasses.dataclass
class ScannedPage:
    # key -> the resource's JSON text, in page order
    data: list[tuple[tuple[str, str], str]]
    included: list[tuple[tuple[str, str], str]]
    top: dict[str, Any]  # every other top-level member, decoded (meta, links, ...)

    def cursor(self) -> Any:
        pagination = (self.top.get("meta") or {}).get("pagination") or {}
        return (pagination.get("cursors") or {}).get("next")

    def total(self) -> Any:
        return ((self.top.get("meta") or {}).get("pagination") or {}).get("total")


def resource_key(item: Any) -> tuple[str, str]:
    if not isinstance(item, dict):
        raise upstream_error("Patreon answered a resource that is not an object")
    return (str(item.get("type")), str(item.get("id")))


def _skip(text: str, i: int) -> int:
    return _WHITESPACE.match(text, i).end()


def _value(text: str, i: int) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, i)
    except (ValueError, RecursionError) as ex:
        raise upstream_error("Patreon answered a page that is not JSON") from ex


def _expect(text: str, i: int, char: str) -> int:
    if text[i : i + 1] != char:
        raise upstream_error("Patreon answered a page that is not a JSON:API document")
    return i + 1


def scan_page(raw: bytes) -> ScannedPage:
    """A listing page's resources as (key, JSON text), and its other members decoded."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as ex:
        raise upstream_error("Patreon answered a page that is not UTF-8") from ex
    spans: dict[str, list[tuple[tuple[str, str], str]]] = {}
    top: dict[str, Any] = {}
    i = _expect(text, _skip(text, 0), "{")
    i = _skip(text, i)
    if text[i : i + 1] == "}":
        i += 1
    else:
        while True:
            key, i = _value(text, i)
            if not isinstance(key, str):
                raise upstream_error("Patreon answered a page that is not a JSON:API document")
            i = _skip(text, _expect(text, _skip(text, i), ":"))
            if key in SPANNED and text[i : i + 1] == "[":
                items: list[tuple[tuple[str, str], str]] = []
                i = _skip(text, i + 1)
                if text[i : i + 1] == "]":
                    i += 1
                else:
                    while True:
                        item, end = _value(text, i)
                        items.append((resource_key(item), text[i:end]))
                        i = _skip(text, end)
                        if text[i : i + 1] == "]":
                            i += 1
                            break
                        i = _skip(text, _expect(text, i, ","))
                spans[key] = items  # a repeated member: the last one counts, as in json.loads
                top.pop(key, None)
            else:
                top[key], i = _value(text, i)
                spans.pop(key, None)
            i = _skip(text, i)
            if text[i : i + 1] == "}":
                i += 1
                break
            i = _skip(text, _expect(text, i, ","))
    if _skip(text, i) != len(text):
        raise upstream_error("Patreon answered a page with data after the document")
    if "data" not in spans:
        if isinstance(top.get("data"), list):  # unreachable: a list is always spanned
            raise AssertionError("data list not spanned")
        raise upstream_error("Patreon answered a listing without a data list")
    if top.get("included") is not None:
        raise upstream_error("Patreon answered a listing whose included is not a list")
    return ScannedPage(spans["data"], spans.get("included", []), top)


def peek_cursor(raw: bytes) -> str | None:
    """The next cursor of a page, read from its tail alone, or None.

    Patreon (and the sandbox) put ``meta`` last, so the cursor can be known before the
    page is scanned, and the next page fetched meanwhile. Only a guess: the caller
    compares it with the scanned page's cursor and drops a prefetch that does not match.
    """
    at = raw.rfind(b'"meta"')
    if at < 0:
        return None
    try:
        text = raw[at:].decode("utf-8")
        i = _skip(text, len('"meta"'))
        if text[i : i + 1] != ":":
            return None
        meta, end = _DECODER.raw_decode(text, _skip(text, i + 1))
    except (ValueError, RecursionError):
        return None
    if text[_skip(text, end) :].strip() != "}" or not isinstance(meta, dict):
        return None  # meta is not the document's last member: no guess
    pagination = meta.get("pagination")
    cursors = pagination.get("cursors") if isinstance(pagination, dict) else None
    cursor = cursors.get("next") if isinstance(cursors, dict) else None
    return cursor if isinstance(cursor, str) and cursor else None


def merged_document(data: list[str], included: list[str], meta: dict[str, Any]) -> bytes:
    """``{"data": [...], "meta": {...}, "included": [...]}`` from resource texts."""
    parts = ['{"data":[', ",".join(data), '],"meta":', json.dumps(meta, separators=(",", ":"))]
    if included:
        parts += [',"included":[', ",".join(included), "]"]
    parts.append("}")
    return "".join(parts).encode("utf-8")
