"""Who hears which event: keys of events and audiences, and the public feed's message."""

from __future__ import annotations

import json

from live.audience import SERVER, Audience, event_keys, member_user_id, public_message
from store.webhook_events import StoredEvent, campaign_of
from tests.webhook_deliveries import encode, member_document


def stored(document: dict, event: str = "members:update", event_id: int = 7) -> StoredEvent:
    return StoredEvent(event_id, event, encode(document), campaign_of(document), "2026-12-01T00:00:00.000Z")


def test_a_member_event_reaches_the_server_its_campaign_and_its_patron_only():
    event = stored(member_document("m1", campaign_id="1001", user_id="55"))
    assert member_user_id(event) == "55"
    assert event_keys(event, public_feed=False) == ["server", "campaign:1001", "user:55"]
    assert SERVER.wants(event)
    assert Audience("creator", frozenset({"1001"})).wants(event)
    assert not Audience("creator", frozenset({"2002"})).wants(event)
    assert Audience("patron", user_id="55").wants(event)
    assert not Audience("patron", user_id="56").wants(event)


def test_a_non_member_event_reaches_no_patron():
    event = stored({"data": {"type": "post", "id": "p1", "relationships": {"user": {"data": {"type": "user", "id": "55"}}}}}, "posts:publish")
    assert member_user_id(event) is None
    assert not Audience("patron", user_id="55").wants(event)


def test_the_public_feed_tells_joins_with_tier_titles_only():
    document = member_document("m2", user_id="77", tier_ids=("2001",))
    document["included"].append({"type": "tier", "id": "2001", "attributes": {"title": "Gold", "amount_cents": 500}})
    document["included"].append({"type": "tier", "id": "2999", "attributes": {"title": "Not theirs"}})
    joined = stored(document, "members:create")
    assert "public" in event_keys(joined, public_feed=True)
    assert "public" not in event_keys(joined, public_feed=False)
    assert "public" not in event_keys(stored(document, "members:update"), public_feed=True)
    message = public_message(joined)
    assert message == {"id": 7, "type": "member:joined", "tiers": ["Gold"], "receivedAt": "2026-12-01T00:00:00.000Z"}
    text = json.dumps(message)
    assert "77" not in text and "patron" not in text.lower() and "m2" not in text
