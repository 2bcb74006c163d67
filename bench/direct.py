"""The direct side of benchmarks 2 and 4: the sandbox's API without the bridge.

The direct client gets a creator token of its own through the sandbox's OAuth flow
(approve the consent form as user 1 with every scope, exchange the code), so it never
refreshes or rotates the creator token pair the worker is using. Both sides send the
same query (``member_query``): what a site asks for when it lists members.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

from bench.client import HttpClient, UnexpectedStatus
from bench.stacks import CAMPAIGN_ID
from harness.stack import Stack

CLIENT_ID = "sandbox-client-id"  # the sandbox's defaults; the bench stacks keep them
CLIENT_SECRET = "sandbox-client-secret"
CREATOR_USER_ID = "1"
ALL_SCOPES = (
    "identity identity[email] identity.memberships campaigns w:campaigns.webhook "
    "campaigns.members campaigns.members[email] campaigns.members.address campaigns.posts"
)
USER_AGENT = "patreon-bridge-bench"  # Patreon refuses requests without one
MEMBERS_API_PATH = f"/api/oauth2/v2/campaigns/{CAMPAIGN_ID}/members"
BRIDGE_MEMBERS_PATH = f"/api/patreon/campaigns/{CAMPAIGN_ID}/members"
MEMBER_FIELDS = "full_name,email,patron_status,last_charge_status,currently_entitled_amount_cents,pledge_relationship_start"


def member_query(page_count: int, **extra: str) -> str:
    """The query both sides send (brackets encoded, as Patreon's clients do)."""
    params = {
        "include": "currently_entitled_tiers",
        "fields[member]": MEMBER_FIELDS,
        "fields[tier]": "title,amount_cents",
        "page[count]": str(page_count),
        **extra,
    }
    return urlencode(params)


def creator_token(stack: Stack) -> str:
    """A fresh creator access token (user 1, every scope) from the OAuth code flow."""
    redirect_uri = f"http://127.0.0.1:{stack.port}/auth/patreon/callback"
    state = secrets.token_urlsafe(12)
    client = HttpClient(stack.sandbox_url, {"User-Agent": USER_AGENT})
    try:
        form = urlencode(
            {
                "response_type": "code",
                "client_id": CLIENT_ID,
                "redirect_uri": redirect_uri,
                "scope": ALL_SCOPES,
                "state": state,
                "user_id": CREATOR_USER_ID,
                "decision": "allow",
            }
        ).encode()
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        approved = client.post("/oauth2/authorize", form, headers=headers, expect=302)
        query = parse_qs(urlsplit(approved.headers["location"]).query)
        if query.get("state") != [state] or "code" not in query:
            raise RuntimeError(f"the sandbox's consent redirect has no code: {sorted(query)}")
        exchange = urlencode(
            {
                "grant_type": "authorization_code",
                "code": query["code"][0],
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uri": redirect_uri,
            }
        ).encode()
        token = client.post("/api/oauth2/token", exchange, headers=headers, expect=200).json()
    finally:
        client.close()
    if "campaigns.members" not in token.get("scope", "").split():
        raise RuntimeError(f"the direct token lacks campaigns.members (scope: {token.get('scope')!r})")
    return token["access_token"]


def next_cursor(document: dict) -> str | None:
    """Patreon's next-page cursor, or None on the last page."""
    pagination = (document.get("meta") or {}).get("pagination") or {}
    return (pagination.get("cursors") or {}).get("next") or None


def walk(client: HttpClient, page_count: int) -> int:
    """A plain sequential walk of every members page; returns the members seen."""
    seen, cursor, cursors = 0, None, set()
    while True:
        extra = {"page[cursor]": cursor} if cursor else {}
        reply = client.get(f"{MEMBERS_API_PATH}?{member_query(page_count, **extra)}")
        if reply.status != 200:
            raise UnexpectedStatus("GET", MEMBERS_API_PATH, reply.status, reply.body)
        document = reply.json()
        seen += len(document.get("data") or [])
        cursor = next_cursor(document)
        if cursor is None or cursor in cursors:
            return seen
        cursors.add(cursor)
