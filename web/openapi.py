"""The OpenAPI 3.1 document of web's HTTP API, served at ``/api/patreon/openapi.json``.

Written by hand, next to the route table it describes (web/app.py), and kept true by
``tests/unit/test_openapi.py``: every route of the table (and every row of
docs/api.md's endpoint table) is an operation here and nothing else is. The test suite
fuzzes the running stack against it with schemathesis
(``tests/integration/test_openapi_fuzz.py``). Every error answer has one shape,
``Error``, so each operation's ``default`` response is that shape.
"""

from __future__ import annotations

from typing import Any

import falcon

from wire.patreon_schema import V2_TRIGGERS

JSON = "application/json"
ERROR_REF = {"$ref": "#/components/schemas/Error"}

ERROR = {
    "type": "object",
    "required": ["success", "error", "code"],
    "properties": {
        "success": {"const": False},
        "error": {"type": "string"},
        "code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]+$"},
    },
}
DOCUMENT = {  # a JSON:API document, as Patreon answers it
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {"type": ["object", "array"]},
        "included": {"type": "array"},
        "links": {"type": "object"},
    },
}
OK = {"type": "object", "required": ["success"], "properties": {"success": {"const": True}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _query(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _path(name: str, pattern: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }


SERVER_KEY = [{"serverKey": []}]
SESSION = [{"session": []}]
SESSION_OR_KEY = [{"session": []}, {"serverKey": []}]
CAMPAIGN_ID = _path("campaignId", "^[0-9]+$", "a campaign id (digits)")
MEMBER_ID = _path("memberId", "^[0-9a-f-]{36}$", "a member id (a UUID)")
POST_ID = _path("postId", "^[0-9]+$", "a post id (digits)")
WEBHOOK_ID = _path("webhookId", "^[0-9]+$", "a webhook id (digits)")
SINGLE_QUERY = [
    _query("include", "related resources, comma-separated"),
    _query("fields[user]", "user fields"),
    _query("fields[campaign]", "campaign fields"),
    _query("fields[member]", "member fields"),
    _query("fields[tier]", "tier fields"),
    _query("fields[post]", "post fields"),
]
LISTING_QUERY = [
    *SINGLE_QUERY,
    _query("sort", "sort keys, comma-separated, - for descending"),
    _query("page[count]", "page size", {"type": "string", "pattern": "^[0-9]{1,4}$"}),
    _query("page[cursor]", "the cursor of the next page"),
    _query("all", "true: every page at once", {"type": "string", "enum": ["true", "false"]}),
]
WEBHOOK = {
    "type": "object",
    "required": ["uri", "triggers"],
    "properties": {
        "uri": {"type": "string", "format": "uri"},
        "triggers": {"type": "array", "items": {"type": "string", "enum": list(V2_TRIGGERS)}, "minItems": 1},
        "campaign_id": {"type": "string", "pattern": "^[0-9]+$"},
    },
}
WEBHOOK_PATCH = {
    "type": "object",
    "properties": {
        "paused": {"type": "boolean"},
        "triggers": WEBHOOK["properties"]["triggers"],
        "uri": WEBHOOK["properties"]["uri"],
    },
}


def _op(
    summary: str,
    ok_status: str,
    ok: dict[str, Any],
    *,
    security: list | None = None,
    parameters: list | None = None,
    body: dict[str, Any] | None = None,
    tags: tuple[str, ...] = (),
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            ok_status: ok,
            "default": {"description": "an error", "content": {JSON: {"schema": ERROR_REF}}},
        },
    }
    if security is not None:
        op["security"] = security
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {"required": False, "content": {JSON: {"schema": body}}}
    if tags:
        op["tags"] = list(tags)
    return op


def _redirect(summary: str, parameters: list | None = None) -> dict[str, Any]:
    return _op(
        summary, "302", {"description": "to Patreon, or after login to POST_LOGIN_URL"}, parameters=parameters
    )


def _read(summary: str, parameters: list) -> dict[str, Any]:
    return _op(
        summary,
        "200",
        _json(DOCUMENT, "Patreon's JSON:API document"),
        security=SESSION_OR_KEY,
        parameters=parameters,
    )


def _moved(summary: str) -> dict[str, Any]:
    """A live path web answers with 410 LIVE_EVENTS_MOVED (``web.events.LiveMovedResource``)."""
    return _op(summary, "410", {"description": "moved to the live program", "content": {JSON: {"schema": ERROR_REF}}})


def _text(media: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": {"type": "string"}}}}


def _paths() -> dict[str, dict[str, Any]]:
    status = _op("worker and watchdog state from heartbeats", "200", _json({"type": "object"}, "the state"))
    events_list = _op(
        "stored webhook events as JSON (back-fill, polling)",
        "200",
        _json(_object(["success", "events"], success={"const": True}, events={"type": "array"}), "events"),
        security=[{"serverKey": []}, {"session": []}],
        parameters=[
            _query("since", "the last event id seen", {"type": "string", "pattern": "^[0-9]{1,18}$"}),
            _query("limit", "at most this many", {"type": "string", "pattern": "^[0-9]{1,4}$"}),
        ],
    )
    return {
        "/api/patreon/status": {"get": status},
        "/api/patreon/health": {
            "get": _op("one ping through the worker", "200", _json({"type": "object"}, "healthy"))
        },
        "/api/patreon/openapi.json": {
            "get": _op("this document", "200", _json({"type": "object"}, "OpenAPI 3.1"))
        },
        "/api/patreon/_test/sleep": {
            "get": _op(
                "a worker call that sleeps ms (BRIDGE_TEST_ACTIONS only)",
                "200",
                _json({"type": "object"}, "slept"),
                parameters=[_query("ms", "0..20000", {"type": "string", "pattern": "^[0-9]{1,5}$"})],
                tags=("test-only",),
            )
        },
        "/api/patreon/_test/crash": {
            "post": _op(
                "the worker answers, then exits 70 (BRIDGE_TEST_ACTIONS only)",
                "200",
                _json(OK, "crashing"),
                tags=("test-only",),
            )
        },
        "/": {
            "get": _op(
                "redirect to the demo page (DEMO_PAGE only)",
                "302",
                {"description": "to /demo"},
                tags=("demo",),
            )
        },
        "/demo": {
            "get": _op(
                "the demo page (DEMO_PAGE only)", "200", _text("text/html", "the page"), tags=("demo",)
            )
        },
        "/demo/static/{name}": {
            "get": _op(
                "the demo page's scripts and styles (DEMO_PAGE only)",
                "200",
                {
                    "description": "the file",
                    "content": {
                        "text/javascript": {"schema": {"type": "string"}},
                        "text/css": {"schema": {"type": "string"}},
                    },
                },
                parameters=[_path("name", "^[a-z0-9.-]+$", "a file name")],
                tags=("demo",),
            )
        },
        "/api/patreon/auth/url": {
            "get": _op(
                "an authorize URL and a fresh state bound to the cookie (sets it)",
                "200",
                _json(
                    _object(
                        ["success", "authUrl", "scopes", "state"],
                        success={"const": True},
                        authUrl={"type": "string"},
                        scopes={"type": "array", "items": {"type": "string"}},
                        state={"type": "string"},
                    ),
                    "the URL",
                ),
                parameters=[
                    _query("scopes", "comma- or space-separated Patreon v2 scopes"),
                    _query("scope", "the same as scopes"),
                ],
            )
        },
        "/auth/patreon": {"get": _redirect("302 to Patreon's consent page, default scopes")},
        "/auth/patreon/callback": {
            "get": _redirect(
                "Patreon's redirect back: exchanges the code and logs the session in",
                [
                    _query(n, f"from Patreon: {n}")
                    for n in ("code", "state", "error", "error_description", "error_uri", "scope")
                ],
            )
        },
        "/api/patreon/auth/token": {
            "post": _op(
                "the code exchange, answered as JSON (single-page apps)",
                "200",
                _json(
                    _object(["success", "user", "campaign_ids", "tokens"], success={"const": True}),
                    "logged in",
                ),
                body=_object(["code", "state"], code={"type": "string"}, state={"type": "string"}),
            )
        },
        "/api/patreon/auth/refresh": {
            "post": _op(
                "refresh the session's own tokens",
                "200",
                _json(_object(["success", "tokens"], success={"const": True}), "refreshed"),
                security=SESSION,
            )
        },
        "/api/patreon/auth/logout": {
            "post": _op(
                "drop the session's tokens and the session",
                "200",
                _json(
                    _object(["success", "loggedOut"], success={"const": True}, loggedOut={"type": "boolean"}),
                    "logged out",
                ),
            )
        },
        "/api/patreon/user": {"get": _read("the identity", SINGLE_QUERY)},
        "/api/patreon/campaigns": {"get": _read("the user's campaigns", SINGLE_QUERY)},
        "/api/patreon/campaigns/{campaignId}/members": {
            "get": _read("one page of members, or all", [CAMPAIGN_ID, *LISTING_QUERY])
        },
        "/api/patreon/campaigns/{campaignId}/posts": {
            "get": _read("one page of posts, or all", [CAMPAIGN_ID, *LISTING_QUERY])
        },
        "/api/patreon/members/{memberId}": {"get": _read("one member", [MEMBER_ID, *SINGLE_QUERY])},
        "/api/patreon/posts/{postId}": {"get": _read("one post", [POST_ID, *SINGLE_QUERY])},
        "/api/patreon/webhooks": {
            "get": _op(
                "the creator's webhooks",
                "200",
                _json(
                    _object(["success", "webhooks"], success={"const": True}, webhooks={"type": "array"}),
                    "webhooks",
                ),
                security=SERVER_KEY,
            ),
            "post": _op(
                "create a webhook; its secret is shown once and stored",
                "201",
                _json(
                    _object(["success", "webhook"], success={"const": True}, webhook={"type": "object"}),
                    "created",
                ),
                security=SERVER_KEY,
                body=WEBHOOK,
            ),
        },
        "/api/patreon/webhooks/{webhookId}": {
            "patch": _op(
                "update (or unpause) a webhook",
                "200",
                _json(OK, "updated"),
                security=SERVER_KEY,
                parameters=[WEBHOOK_ID],
                body=WEBHOOK_PATCH,
            ),
            "delete": _op(
                "delete a webhook and its stored secret",
                "200",
                _json(OK, "deleted"),
                security=SERVER_KEY,
                parameters=[WEBHOOK_ID],
            ),
        },
        "/api/patreon/webhooks/patreon": {
            "post": _op(
                "Patreon's deliveries: verified (X-Patreon-Signature), stored, then 200",
                "200",
                _json(
                    _object(
                        ["success", "processed", "event", "id", "duplicate"],
                        success={"const": True},
                        id={"type": "integer"},
                        duplicate={"type": "boolean"},
                    ),
                    "stored",
                ),
                parameters=[
                    {
                        "name": "X-Patreon-Signature",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "X-Patreon-Event",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                body={"type": "object"},
            )
        },
        "/api/patreon/events": {"get": _moved("SSE: served by the live program, not web")},
        "/api/patreon/webhooks/events": {"get": events_list},
        "/api/patreon/members/{memberId}/state": {
            "get": _op(
                "one member as the member table holds it (synced and refreshed from Patreon)",
                "200",
                _json(_object(["success", "member"], success={"const": True}), "the state"),
                security=SERVER_KEY,
                parameters=[MEMBER_ID],
            )
        },
        "/api/patreon/entitlements/{userId}": {
            "get": _op(
                "every campaign the user belongs to, with tiers, benefits and active (from the store)",
                "200",
                _json(_object(["success", "user_id", "synced", "campaigns"], success={"const": True}), "entitlements"),
                security=SERVER_KEY,
                parameters=[_path("userId", "^[0-9]+$", "a Patreon user id (digits)")],
            )
        },
        "/api/patreon/access": {
            "get": _op(
                "may this user see this tier, benefit or amount? (from the store)",
                "200",
                _json(
                    _object(["allowed", "reason"], allowed={"type": "boolean"}, reason={"type": "string"}),
                    "the decision and its stable reason",
                ),
                security=SERVER_KEY,
                parameters=[
                    _query("userId", "a Patreon user id (digits)"),
                    _query("tierId", "a tier id (digits)"),
                    _query("benefitId", "a benefit id (digits)"),
                    _query("minCents", "an entitled amount in cents"),
                ],
            )
        },
        "/api/patreon/me/entitlements": {
            "get": _op(
                "the logged-in patron's own entitlements",
                "200",
                _json(_object(["success", "user_id", "synced", "campaigns"], success={"const": True}), "entitlements"),
                security=SESSION,
            )
        },
        "/api/patreon/sync": {
            "post": _op(
                "start a full member sync; progress in /api/patreon/status",
                "202",
                _json(_object(["success"], success={"const": True}), "the sync queued"),
                security=SERVER_KEY,
            )
        },
        "/api/patreon/live/tokens": {
            "post": _op(
                "mint a short-lived subscribe token for the live program",
                "200",
                _json(
                    _object(["success", "token", "audience", "expiresAt", "expiresIn"], success={"const": True}),
                    "the token",
                ),
                security=SERVER_KEY,
                body=_object(
                    ["audience"],
                    audience={"type": "string", "enum": ["patron", "creator", "public"]},
                    userId={"type": "string"},
                    campaignIds={"type": "array", "items": {"type": "string"}},
                    ttlSeconds={"type": "number"},
                ),
            )
        },
        "/socket.io": {
            "get": _moved("Socket.IO: served by the live program, not web"),
            "post": _moved("Socket.IO: served by the live program, not web"),
        },
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Patreon bridge",
            "version": "1",
            "description": "Login with Patreon, API v2 reads, webhooks and live events. Every error is "
            "the Error object with a stable code (docs/api.md#errors).",
        },
        "paths": _paths(),
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {
                "serverKey": {"type": "http", "scheme": "bearer", "description": "BRIDGE_API_KEY"},
                "session": {"type": "apiKey", "in": "cookie", "name": "pb_session"},
            },
        },
    }


class OpenApiResource:
    def __init__(self) -> None:
        self._document = document()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self._document
