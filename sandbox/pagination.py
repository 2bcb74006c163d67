"""Patreon-style cursor pagination: `page[count]`, opaque `page[cursor]`, `sort`.

Cursors are keyset cursors: they carry the sort key of the last item served, so a
member added or removed between two pages neither repeats nor hides anyone else. The
cursor is urlsafe base64 of a small JSON object naming the collection and the sort it
belongs to; changing `sort` (or the endpoint) under a cursor is a 400, as is a
cursor that does not decode.

Sorted orders are cached per (collection, sort, world version), so paging through
10,000 members sorts them once.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sandbox.errors import parameter_invalid
from sandbox.jsonapi import split_list

DEFAULT_COUNT = 20  # observed on Patreon
MAX_COUNT = 1000
MAX_COUNT_WITH_PLEDGE_HISTORY = 500

SORTABLE: dict[str, tuple[str, ...]] = {
    "members": (
        "campaign_lifetime_support_cents",
        "currently_entitled_amount_cents",
        "full_name",
        "last_charge_date",
        "next_charge_date",
        "pledge_relationship_start",
    ),
    "posts": ("published_at", "title"),
}


class Descending:
    """Inverts the order of a sort-key component."""

    __slots__ = ("value",)

    def __init__(self, value: Any):
        self.value = value

    def __lt__(self, other: Descending) -> bool:
        return other.value < self.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Descending) and other.value == self.value

    def __hash__(self) -> int:  # pragma: no cover - never hashed, defined for symmetry
        return hash(self.value)


@dataclass(frozen=True)
class PageRequest:
    count: int
    cursor: str | None
    sort: tuple[tuple[str, bool], ...]  # (attribute, descending)

    @property
    def sort_signature(self) -> str:
        return ",".join(("-" if desc else "") + name for name, desc in self.sort)


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_cursor: str | None
    total: int


def parse_page(params: Mapping[str, Any], collection: str, max_count: int) -> PageRequest:
    raw_count = params.get("page[count]")
    count = DEFAULT_COUNT
    if raw_count is not None:
        if isinstance(raw_count, list):
            raw_count = raw_count[-1]
        try:
            count = int(raw_count)
        except ValueError:
            raise parameter_invalid(f"page[count]: {raw_count!r} is not an integer.") from None
        if count < 1 or count > max_count:
            raise parameter_invalid(f"page[count]: must be between 1 and {max_count}.")
    cursor = params.get("page[cursor]")
    if isinstance(cursor, list):
        cursor = cursor[-1]
    sortable = SORTABLE.get(collection, ())
    sort: list[tuple[str, bool]] = []
    for item in split_list(params.get("sort")):
        name, descending = (item[1:], True) if item.startswith("-") else (item, False)
        if name not in sortable:
            allowed = ", ".join(sortable) or "nothing"
            raise parameter_invalid(f"sort: '{name}' is not sortable here (allowed: {allowed}).")
        sort.append((name, descending))
    return PageRequest(count=count, cursor=cursor or None, sort=tuple(sort))


def encode_cursor(collection: str, signature: str, key: list[Any]) -> str:
    raw = json.dumps({"c": collection, "s": signature, "k": key}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, collection: str, signature: str) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode()))
        key = decoded["k"]
        valid = (
            isinstance(decoded, dict)
            and decoded.get("c") == collection
            and decoded.get("s") == signature
            and isinstance(key, list)
        )
    except (ValueError, TypeError, KeyError, binascii.Error):
        valid = False
    if not valid:
        raise parameter_invalid(
            "page[cursor]: invalid cursor (it must come from meta.pagination.cursors.next "
            "of the same request with the same sort)."
        )
    return key


class Paginator:
    """Sorts collections (cached) and cuts keyset pages out of them."""

    def __init__(self, max_cached: int = 32):
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, int], tuple[list[tuple], list[Any]]] = {}
        self._max_cached = max_cached

    def page(
        self,
        collection: str,
        items: Callable[[], Sequence[Any]],
        request: PageRequest,
        version: int,
        value: Callable[[Any, str], Any],
    ) -> Page:
        """`items` lists the collection; `value(obj, name)` reads a sortable attribute.

        Every object has a unique integer `seq`, the last component of every key.
        """
        signature = request.sort_signature
        keys, ordered = self._sorted(collection, items, request, version, value)
        start = 0
        if request.cursor is not None:
            raw_key = decode_cursor(request.cursor, collection, signature)
            if len(raw_key) != len(request.sort) + 1 or not isinstance(raw_key[-1], int):
                raise parameter_invalid("page[cursor]: invalid cursor.")
            try:
                start = bisect.bisect_right(keys, _key(raw_key, request.sort))
            except TypeError:
                raise parameter_invalid("page[cursor]: invalid cursor.") from None
        chunk = ordered[start : start + request.count]
        next_cursor = None
        if chunk and start + len(chunk) < len(ordered):
            last = chunk[-1]
            raw = [value(last, name) for name, _ in request.sort] + [last.seq]
            next_cursor = encode_cursor(collection, signature, raw)
        return Page(items=list(chunk), next_cursor=next_cursor, total=len(ordered))

    def _sorted(self, collection, items, request, version, value):
        cache_key = (collection, request.sort_signature, version)
        with self._lock:
            cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        pairs = [
            (_key([value(obj, name) for name, _ in request.sort] + [obj.seq], request.sort), obj)
            for obj in items()
        ]
        pairs.sort(key=lambda pair: pair[0])
        result = ([key for key, _ in pairs], [obj for _, obj in pairs])
        with self._lock:
            stale = [k for k in self._cache if k[0] == collection and k[2] != version]
            for k in stale:
                del self._cache[k]
            if len(self._cache) >= self._max_cached:
                self._cache.clear()
            self._cache[cache_key] = result
        return result


def _key(raw: list[Any], sort: Sequence[tuple[str, bool]]) -> tuple:
    """None sorts first (ascending); the trailing `seq` is always ascending."""
    parts: list[Any] = []
    for (_, descending), component in zip(sort, raw, strict=False):
        part = (component is not None, component if component is not None else 0)
        parts.append(Descending(part) if descending else part)
    parts.append(raw[-1])
    return tuple(parts)
