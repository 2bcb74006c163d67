"""Webhook management with the creator's token (server key required).

    GET    /api/patreon/webhooks          {success, webhooks: [{id, uri, triggers, paused,
                                           num_consecutive_times_failed, last_attempted_at,
                                           campaign_id, secret_stored}]}
    POST   /api/patreon/webhooks          {uri, triggers, campaign_id?} -> 201 {success, webhook}
    PATCH  /api/patreon/webhooks/{id}     {paused?, triggers?, uri?}    -> {success, webhook}
    DELETE /api/patreon/webhooks/{id}     -> {success, deleted}

Only the site's own backend may do this: ``Authorization: Bearer <BRIDGE_API_KEY>``.
``PATCH {"paused": false}`` unpauses a webhook, and Patreon then resends the
deliveries it queued while the webhook was paused. The secret Patreon gives a new
webhook is kept in the store (the receiver verifies deliveries with it) and shown
once, in the answer to the POST; listings never show it.

The receiver's ``POST /api/patreon/webhooks/patreon`` is not routed here.
"""

from __future__ import annotations

from typing import Any

import falcon

from settings.config import WebSettings
from web.codes import CONFLICTING_CAMPAIGN_ID, UNKNOWN_FIELD
from web.errors import ApiError
from web.policy import read_json_body, refuse_query, require_server_key_for_management
from wire import actions
from wire import patreon_schema as schema
from wire.client import WorkerClient
from wire.codes import (
    INVALID_CAMPAIGN_ID,
    INVALID_PAUSED,
    INVALID_WEBHOOK_ID,
    NOTHING_TO_UPDATE,
)

CREATE_FIELDS = {"uri", "triggers", "campaign_id", "campaignId"}
UPDATE_FIELDS = {"paused", "triggers", "uri"}


def _checked(check, *args: Any) -> Any:
    try:
        return check(*args)
    except schema.ParamError as ex:
        raise ApiError(400, ex.code, ex.message) from ex


def _webhook_id(value: str) -> str:
    return _checked(schema.check_id, value, schema.WEBHOOK_ID, INVALID_WEBHOOK_ID, "webhook id (digits)")


def _paused(value: Any) -> bool:
    # Patreon's own clients send it as a boolean or as the string "true"/"false".
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ApiError(400, INVALID_PAUSED, "paused must be true or false")


@falcon.before(require_server_key_for_management)
@falcon.before(refuse_query)
class WebhooksResource:
    def __init__(self, config: WebSettings, worker: WorkerClient):
        self.config = config
        self.worker = worker

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        result = self.worker.send(actions.WebhooksList(), request_id=req.context.request_id)
        resp.media = {"success": True, "webhooks": result.get("webhooks", [])}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = read_json_body(req)
        unknown = set(body) - CREATE_FIELDS
        if unknown:
            raise ApiError(400, UNKNOWN_FIELD, f"unknown field {sorted(unknown)[0][:60]!r}")
        data: dict[str, Any] = {
            "uri": _checked(schema.check_uri, body.get("uri")),
            "triggers": _checked(schema.check_triggers, body.get("triggers")),
        }
        # Both spellings are taken; null counts as absent, and two different values are
        # a mistake to report, not to settle by picking one.
        given = [_id_text(body.get(name)) for name in ("campaign_id", "campaignId")]
        given = [value for value in given if value is not None]
        if len(given) == 2 and given[0] != given[1]:
            raise ApiError(
                400, CONFLICTING_CAMPAIGN_ID, "campaign_id and campaignId differ: send one of them"
            )
        campaign_id = given[0] if given else None
        if campaign_id is not None:
            data["campaign_id"] = _checked(
                schema.check_id,
                campaign_id,
                schema.CAMPAIGN_ID,
                INVALID_CAMPAIGN_ID,
                "campaign_id (digits)",
            )
        # Not retried: a lost reply must not create a second webhook.
        result = self.worker.send(actions.WebhooksCreate(**data), request_id=req.context.request_id)
        resp.status = falcon.HTTP_201
        resp.set_header("Cache-Control", "no-store")  # the answer carries the webhook's secret
        resp.media = {"success": True, "webhook": result.get("webhook")}


def _id_text(value: Any) -> Any:
    """A JSON number id as text ("5" and 5 are the same id); anything else unchanged."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


@falcon.before(require_server_key_for_management)
@falcon.before(refuse_query)
class WebhookResource:
    def __init__(self, config: WebSettings, worker: WorkerClient):
        self.config = config
        self.worker = worker

    def on_patch(self, req: falcon.Request, resp: falcon.Response, webhookId: str) -> None:
        webhook_id = _webhook_id(webhookId)
        body = read_json_body(req)
        unknown = set(body) - UPDATE_FIELDS
        if unknown:
            raise ApiError(400, UNKNOWN_FIELD, f"unknown field {sorted(unknown)[0][:60]!r}")
        if not body:
            raise ApiError(400, NOTHING_TO_UPDATE, "send paused, triggers or uri")
        data: dict[str, Any] = {"webhook_id": webhook_id}
        if "paused" in body:
            data["paused"] = _paused(body["paused"])
        if "triggers" in body:
            data["triggers"] = _checked(schema.check_triggers, body["triggers"])
        if "uri" in body:
            data["uri"] = _checked(schema.check_uri, body["uri"])
        result = self.worker.send(actions.WebhooksUpdate(**data), request_id=req.context.request_id)
        resp.media = {"success": True, "webhook": result.get("webhook")}

    def on_delete(self, req: falcon.Request, resp: falcon.Response, webhookId: str) -> None:
        webhook_id = _webhook_id(webhookId)
        result = self.worker.send(
            actions.WebhooksDelete(webhook_id=webhook_id), request_id=req.context.request_id
        )
        resp.media = {"success": True, "deleted": result.get("deleted", webhook_id)}
