"""What a subscriber receives: an event's names and its Server-Sent Events frame.

Every stored webhook event goes out as ``patreon:webhook`` with ``{"id", "type",
"data", "included", "receivedAt"}`` (``StoredEvent.message``), plus the original's
second name: ``patreon:member:create|update|delete`` for ``members:*`` triggers and
``patreon:pledge:create|update|delete`` for ``members:pledge:*`` and legacy
``pledges:*`` triggers (same payload). On SSE, ``id:`` is the event's id.
"""

from __future__ import annotations

import json

from store.webhook_events import StoredEvent

WEBHOOK_EVENT = "patreon:webhook"


def alias_event(trigger: str) -> str | None:
    """The original's second event name for a trigger, if it has one."""
    if trigger.startswith("members:pledge:") or trigger.startswith("pledges:"):
        return "patreon:pledge:" + trigger.rsplit(":", 1)[1]
    if trigger.startswith("members:"):
        return "patreon:member:" + trigger.rsplit(":", 1)[1]
    return None


def format_sse(event: StoredEvent) -> bytes:
    # ensure_ascii: a delivery may hold a lone surrogate ("\ud800"), which UTF-8 cannot encode.
    data = json.dumps(event.message(), separators=(",", ":"), ensure_ascii=True)
    return f"id: {event.id}\nevent: {WEBHOOK_EVENT}\ndata: {data}\n\n".encode()
