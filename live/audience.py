"""Who hears which event: the four audiences of the live program.

* ``server``: the site's backend (server key): every event.
* ``creator``: a creator (session cookie, or a ``creator`` subscribe token): the
  events of their campaigns.
* ``patron``: a ``patron`` subscribe token: only the member events whose
  ``data.relationships.user`` is that patron. Nothing about anyone else.
* ``public``: the public feed, when ``LIVE_PUBLIC_FEED`` is on: a new member's
  arrival, with the tier titles only (no name, no email, no member id).

The hub files each client under one or more *keys* and looks an event's keys up, so a
fan-out costs the clients it reaches, not every client.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from store.webhook_events import StoredEvent

SERVER_KEY = "server"
PUBLIC_KEY = "public"
# Triggers that mean "someone joined": what the public feed tells.
JOINED_TRIGGERS = frozenset({"members:create", "members:pledge:create", "pledges:create"})
PUBLIC_EVENT = "patreon:public"


@dataclasses.dataclass(frozen=True)
class Audience:
    kind: str  # "server" | "creator" | "patron" | "public"
    campaign_ids: frozenset[str] = frozenset()
    user_id: str | None = None
    # A creator's session, re-checked while the connection lasts. Never logged.
    session_id: str | None = dataclasses.field(default=None, repr=False, compare=False)

    def keys(self) -> tuple[str, ...]:
        if self.kind == "server":
            return (SERVER_KEY,)
        if self.kind == "creator":
            return tuple(f"campaign:{c}" for c in sorted(self.campaign_ids))
        if self.kind == "patron":
            return (f"user:{self.user_id}",)
        return (PUBLIC_KEY,)

    def wants(self, event: StoredEvent) -> bool:
        """The same decision as ``event_keys``, for one client (replays)."""
        return bool(set(self.keys()) & set(event_keys(event, public_feed=True)))


SERVER = Audience("server")


def member_user_id(event: StoredEvent) -> str | None:
    """The Patreon user a member event is about, when it is a member event."""
    data = event.document().get("data")
    if not isinstance(data, dict) or data.get("type") != "member":
        return None
    try:
        user_id = data["relationships"]["user"]["data"]["id"]
    except (KeyError, TypeError):
        return None
    return user_id if isinstance(user_id, str) and user_id else None


def event_keys(event: StoredEvent, *, public_feed: bool) -> list[str]:
    keys = [SERVER_KEY]
    if event.campaign_id:
        keys.append(f"campaign:{event.campaign_id}")
    user_id = member_user_id(event)
    if user_id is not None:
        keys.append(f"user:{user_id}")
    if public_feed and event.event in JOINED_TRIGGERS:
        keys.append(PUBLIC_KEY)
    return keys


def public_message(event: StoredEvent) -> dict[str, Any]:
    """A join, as the public feed tells it: the tier titles, nothing about the person."""
    doc = event.document()
    data = doc.get("data") if isinstance(doc.get("data"), dict) else {}
    try:
        tier_refs = data["relationships"]["currently_entitled_tiers"]["data"]
    except (KeyError, TypeError):
        tier_refs = []
    tier_ids = {t.get("id") for t in tier_refs if isinstance(t, dict)} if isinstance(tier_refs, list) else set()
    titles = []
    for item in doc.get("included") or []:
        if isinstance(item, dict) and item.get("type") == "tier" and item.get("id") in tier_ids:
            title = (item.get("attributes") or {}).get("title")
            if isinstance(title, str):
                titles.append(title)
    return {"id": event.id, "type": "member:joined", "tiers": sorted(titles), "receivedAt": event.received_at}
