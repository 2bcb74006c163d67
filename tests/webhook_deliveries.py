"""Webhook deliveries the way Patreon sends them, for unit and integration tests.

``member_document`` builds a ``member`` JSON:API document with all the attributes a
real delivery carries (email included, so tests can check it never reaches a log or
the member state); ``signed_headers`` signs the exact bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

CAMPAIGN_ID = "1001"
PATH = "/api/patreon/webhooks/patreon"
EMAIL_DOMAIN = "patrons.example"


def member_document(
    member_id: str = "0b3f7a4e-1111-4c2a-9d7e-000000000001",
    *,
    campaign_id: str = CAMPAIGN_ID,
    user_id: str = "2",
    patron_status: str | None = "active_patron",
    last_charge_status: str | None = "Paid",
    tier_ids: tuple[str, ...] = ("2001",),
    cents: int = 500,
    note: str = "",
) -> dict[str, Any]:
    return {
        "data": {
            "type": "member",
            "id": member_id,
            "attributes": {
                "campaign_lifetime_support_cents": cents * 3,
                "currently_entitled_amount_cents": cents,
                "email": f"patron-{user_id}@{EMAIL_DOMAIN}",
                "full_name": f"Patron {user_id}",
                "is_follower": False,
                "is_free_trial": False,
                "is_gifted": False,
                "last_charge_date": "2026-05-01T10:00:00.000+00:00",
                "last_charge_status": last_charge_status,
                "lifetime_support_cents": cents * 3,
                "next_charge_date": "2026-06-01T00:00:00.000+00:00",
                "note": note,
                "patron_status": patron_status,
                "pledge_cadence": 1,
                "pledge_relationship_start": "2026-01-01T10:00:00.000+00:00",
                "will_pay_amount_cents": cents,
            },
            "relationships": {
                "address": {"data": None},
                "campaign": {
                    "data": {"type": "campaign", "id": campaign_id},
                    "links": {"related": f"https://www.patreon.com/api/oauth2/v2/campaigns/{campaign_id}"},
                },
                "currently_entitled_tiers": {"data": [{"type": "tier", "id": t} for t in tier_ids]},
                "user": {
                    "data": {"type": "user", "id": user_id},
                    "links": {"related": f"https://www.patreon.com/api/oauth2/v2/user/{user_id}"},
                },
            },
        },
        "included": [
            {"type": "campaign", "id": campaign_id, "attributes": {"vanity": "sandbox"}},
            {"type": "user", "id": user_id, "attributes": {"full_name": f"Patron {user_id}"}},
        ],
        "links": {"self": f"https://www.patreon.com/api/oauth2/v2/members/{member_id}"},
    }


def encode(document: dict[str, Any]) -> bytes:
    """Compact JSON, like Patreon's: any other serialization changes the signature."""
    return json.dumps(document, separators=(",", ":")).encode()


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.md5).hexdigest()


def signed_headers(secret: str, body: bytes, event: str = "members:create") -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Patreon-Event": event,
        "X-Patreon-Signature": sign(secret, body),
        "User-Agent": "Patreon HTTP Robot 2.0",
    }
