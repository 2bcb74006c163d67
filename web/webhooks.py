"""The Patreon webhook receiver: ``POST /api/patreon/webhooks/patreon``.

A delivery is checked in this order, each failure with its own code:

1. a secret is configured at all          else 503 ``WEBHOOKS_NOT_CONFIGURED``
2. the body is at most 1 MiB               else 413 ``PAYLOAD_TOO_LARGE``
3. ``X-Patreon-Signature`` is present      else 400 ``MISSING_SIGNATURE``
4. it is the lowercase hex HMAC-MD5 of the RAW body under one of the secrets
   (``PATREON_WEBHOOK_SECRET``, a comma list for rotation, plus the secrets of the
   webhooks created through this service)  else 401 ``INVALID_SIGNATURE``
5. ``X-Patreon-Event`` is a Patreon trigger (v2, or legacy ``pledges:*``)
                                           else 400 ``UNKNOWN_EVENT``
6. the body is a JSON:API document         else 400 ``INVALID_PAYLOAD``

The signature covers the bytes exactly as received: the body is read raw and never
re-serialized before the check (the original's bug). An accepted delivery is
written to the store and committed, and only then answered 200; the same delivery
again is answered 200 with ``duplicate: true`` and its first id. "The same" means the
same body bytes, whatever ``X-Patreon-Event`` says: the signature does not cover the
header, so a body replayed under another trigger is not stored again; it is answered
like any duplicate, and a warning with both trigger names and the stored id (nothing
from the body) is logged. The receiver never
talks to the worker, so it accepts while the worker is down; the worker consumes the
stored events later. No session or CSRF logic applies here: the signature is the
authentication.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

import falcon

from live_events import wakeup
from settings.config import WebSettings
from store import webhook_events, webhook_secrets
from store.database import Store, StoreError
from store.generations import CachedRead
from web.codes import (
    INVALID_PAYLOAD,
    INVALID_SIGNATURE,
    MISSING_SIGNATURE,
    STORE_UNAVAILABLE,
    UNKNOWN_EVENT,
    WEBHOOKS_NOT_CONFIGURED,
)
from web.errors import ApiError
from web.policy import read_body

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024  # Patreon's documents are a few KiB; waitress enforces the same limit
SIGNATURE_HEADER = "X-Patreon-Signature"
EVENT_HEADER = "X-Patreon-Event"
STORE_RETRY_AFTER_S = 2
MAX_EVENT_HEADER_CHARS = 64


def signature(secret: str, raw_body: bytes) -> str:
    """Patreon's signature of a body: lowercase hex HMAC-MD5 keyed with the webhook secret."""
    return hmac.new(secret.encode("utf-8"), raw_body, hashlib.md5).hexdigest()


def signature_matches(presented: str, raw_body: bytes, secrets: list[str]) -> bool:
    # Header values arrive as latin-1 text (WSGI), so encoding them back never fails.
    given = presented.strip().lower().encode("latin-1")
    matched = False
    for secret in secrets:
        # Check every secret, so the time taken does not tell which one matched.
        matched |= hmac.compare_digest(signature(secret, raw_body).encode("ascii"), given)
    return matched


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def jsonapi_document(raw_body: bytes) -> dict[str, Any] | None:
    """The body as a JSON:API document (an object whose ``data`` is a resource object
    with a string ``type`` and ``id``), or None when it is not one."""
    try:
        doc = json.loads(raw_body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        return None
    data = doc["data"]
    if not all(isinstance(data.get(k), str) and data[k] for k in ("type", "id")):
        return None
    return doc if isinstance(doc.get("included", []), list) else None


class WebhookReceiverResource:
    def __init__(self, config: WebSettings, store: Store, stored_secrets: Callable[[], list[str]] | None = None):
        self._config_secrets = list(config.webhook_secrets)
        self._data_dir = config.data_dir  # where live's wake-up socket is (live_events.wakeup)
        self._store = store
        # Re-read only after any process changed the table (store.generations).
        self._stored_secrets = stored_secrets or CachedRead(
            store, "webhook_secrets", webhook_secrets.all_secrets
        )

    def _secrets(self) -> list[str]:
        try:
            stored = self._stored_secrets()
        except StoreError as ex:
            log.error("webhook secrets cannot be read from the store: %s", ex)
            raise ApiError(
                503, STORE_UNAVAILABLE, "The event store is not available", retry_after=STORE_RETRY_AFTER_S
            ) from ex
        return [*self._config_secrets, *(s for s in stored if s and s not in self._config_secrets)]

    def _read_body(self, req: falcon.Request) -> bytes:
        return read_body(req, MAX_BODY_BYTES, f"Webhook bodies are limited to {MAX_BODY_BYTES} bytes")

    def _warn_if_trigger_differs(self, event: str, event_id: int) -> None:
        try:
            stored = webhook_events.get(self._store, event_id)
        except StoreError:
            return  # the answer does not depend on it
        if stored is not None and stored.event != event:
            log.warning(
                "webhook body already stored as event id=%d under %s; this delivery says %s:"
                " not stored again (a replay under another trigger?)",
                event_id,
                stored.event,
                event,
            )

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        secrets = self._secrets()
        if not secrets:
            raise ApiError(
                503,
                WEBHOOKS_NOT_CONFIGURED,
                "No webhook secret is configured (PATREON_WEBHOOK_SECRET); unsigned deliveries are never accepted",
            )
        raw_body = self._read_body(req)
        presented = req.get_header(SIGNATURE_HEADER)
        if not presented:
            raise ApiError(400, MISSING_SIGNATURE, f"The {SIGNATURE_HEADER} header is missing")
        if not signature_matches(presented, raw_body, secrets):
            raise ApiError(401, INVALID_SIGNATURE, "The webhook signature is not valid")
        event = (req.get_header(EVENT_HEADER) or "").strip()
        if event not in webhook_events.TRIGGERS:
            shown = event[:MAX_EVENT_HEADER_CHARS] if event.isprintable() else "?"
            raise ApiError(
                400,
                UNKNOWN_EVENT,
                f"{EVENT_HEADER} {shown!r} is not a Patreon webhook trigger"
                if event
                else f"The {EVENT_HEADER} header is missing",
            )
        document = jsonapi_document(raw_body)
        if document is None:
            raise ApiError(400, INVALID_PAYLOAD, "The body is not a JSON:API document")
        try:
            event_id, duplicate = webhook_events.accept(self._store, event, raw_body, document=document)
        except StoreError as ex:
            # Not stored: a non-2xx makes Patreon deliver it again later.
            log.error("webhook %s could not be stored: %s", event, ex)
            raise ApiError(
                503, STORE_UNAVAILABLE, "The event store is not available", retry_after=STORE_RETRY_AFTER_S
            ) from ex
        if duplicate:
            self._warn_if_trigger_differs(event, event_id)
        else:
            wakeup.committed(self._data_dir, event_id)  # wake live; never blocks or raises
        log.info(
            "📨 Patreon webhook received: %s id=%d%s", event, event_id, " (duplicate)" if duplicate else ""
        )
        resp.media = {
            "success": True,
            "processed": True,
            "event": event,
            "id": event_id,
            "duplicate": duplicate,
        }
