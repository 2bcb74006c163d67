"""The entitlement API, for the site's backend (server key) and for a logged-in patron:

* ``GET /api/patreon/entitlements/{userId}``: every campaign the user belongs to;
* ``GET /api/patreon/access?userId=&tierId=|benefitId=|minCents=``: ``{allowed, reason}``;
* ``GET /api/patreon/me/entitlements``: the logged-in patron's own rows;
* ``POST /api/patreon/sync``: start a full member sync (the worker's ``members.sync``).

The three reads are answered from the store's member and tier tables (web reads them
directly, as it reads sessions and the event log), never by calling Patreon or the
worker, so they stay fast and keep answering while Patreon or the worker is down.
What they read is cached per process until any process writes those tables
(``web.entitlement_reads``).
The answers come from ``entitlements.answers`` (the rule: ``entitlements.rule``). An
unknown user is an ordinary answer (no memberships, ``NOT_A_MEMBER``), never a 404.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import falcon

from entitlements import answers, rule
from settings.config import WebSettings
from store import member_sync, members
from store.database import Store
from web.codes import (
    ACCESS_QUERY_REQUIRED,
    INVALID_BENEFIT_ID,
    INVALID_MIN_CENTS,
    INVALID_TIER_ID,
    INVALID_USER_ID,
)
from web.entitlement_reads import EntitlementReads
from web.errors import ApiError
from web.policy import refuse_query, require_server_key, require_server_key_for_management
from web.sessions import SessionStore
from wire import actions
from wire.client import WorkerClient
from wire.codes import INVALID_PARAMETER, PATREON_AUTH_REQUIRED, UNKNOWN_PARAMETER

PATREON_ID = re.compile(r"[0-9]{1,20}")  # used with fullmatch
MAX_MIN_CENTS = 100_000_000
ACCESS_PARAMETERS = ("userId", "tierId", "benefitId", "minCents")
# Every answer the access route can give, encoded once (the same bytes resp.media made).
_ACCESS_BODIES = {
    (allowed, reason): json.dumps({"allowed": allowed, "reason": str(reason)}, ensure_ascii=False).encode()
    for allowed in (True, False)
    for reason in rule.Reason
}


def _now() -> datetime:
    return datetime.now(UTC)


def _single(req: falcon.Request, name: str) -> str | None:
    value = req.params.get(name)
    if isinstance(value, list):
        raise ApiError(400, INVALID_PARAMETER, f"{name} is given more than once")
    return value


def _patreon_id(value: str | None, code: str, name: str) -> str:
    if value is None or not PATREON_ID.fullmatch(value):
        raise ApiError(400, code, f"{name} must be a Patreon id (digits)")
    return value


class _Reads:
    def __init__(self, config: WebSettings, store: Store, reads: EntitlementReads | None = None):
        self.config = config
        self._store = store
        # One per process (web.app shares it between the routes): see web.entitlement_reads.
        self._reads = reads or EntitlementReads(store)
        self._grace = timedelta(seconds=config.entitlement_grace_s)

    def entitlements(self, user_id: str) -> dict:
        catalog = self._reads.catalog()
        return {
            "success": True,
            "user_id": user_id,
            "synced": catalog.synced,
            "campaigns": answers.entitlements(
                members.of_user(self._store, user_id),
                catalog.tiers,
                catalog.benefits,
                now=_now(),
                grace=self._grace,
            ),
        }


@falcon.before(require_server_key)
@falcon.before(refuse_query)
class EntitlementsResource(_Reads):
    def on_get(self, req: falcon.Request, resp: falcon.Response, userId: str) -> None:
        resp.media = self.entitlements(_patreon_id(userId, INVALID_USER_ID, "userId"))


@falcon.before(refuse_query)
class MyEntitlementsResource(_Reads):
    def __init__(
        self, config: WebSettings, store: Store, sessions: SessionStore, reads: EntitlementReads | None = None
    ):
        super().__init__(config, store, reads)
        self._sessions = sessions

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        session = self._sessions.from_request(req)
        if session is None or not session.logged_in:
            raise ApiError(401, PATREON_AUTH_REQUIRED, "Log in with Patreon first")
        resp.media = self.entitlements(session.user_id)


@falcon.before(require_server_key)
class AccessResource(_Reads):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        unknown = sorted(set(req.params) - set(ACCESS_PARAMETERS))
        if unknown:
            raise ApiError(400, UNKNOWN_PARAMETER, f"unknown query parameter {unknown[0][:60]!r}")
        user_id = _patreon_id(_single(req, "userId"), INVALID_USER_ID, "userId")
        given = [name for name in ("tierId", "benefitId", "minCents") if name in req.params]
        if len(given) != 1:
            raise ApiError(400, ACCESS_QUERY_REQUIRED, "give exactly one of tierId, benefitId, minCents")
        if given == ["tierId"]:
            query = rule.Query(tier_id=_patreon_id(_single(req, "tierId"), INVALID_TIER_ID, "tierId"))
        elif given == ["benefitId"]:
            query = rule.Query(
                benefit_id=_patreon_id(_single(req, "benefitId"), INVALID_BENEFIT_ID, "benefitId")
            )
        else:
            raw = _single(req, "minCents") or ""
            # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
            if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or int(raw) > MAX_MIN_CENTS:
                raise ApiError(400, INVALID_MIN_CENTS, "minCents must be a whole number of cents")
            query = rule.Query(min_cents=int(raw))
        catalog, memberships = self._reads.access_inputs(user_id)
        decision = rule.decide(
            query, memberships, catalog.rule_tiers, synced=catalog.synced, now=_now(), grace=self._grace
        )
        resp.data = _ACCESS_BODIES[decision.allowed, decision.reason]
        resp.content_type = falcon.MEDIA_JSON


@falcon.before(require_server_key_for_management)
@falcon.before(refuse_query)
class SyncResource:
    def __init__(self, config: WebSettings, worker: WorkerClient):
        self.config = config
        self._worker = worker

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        result = self._worker.send(actions.MembersSync(), request_id=req.context.request_id)
        resp.status = falcon.HTTP_202
        resp.media = {"success": True, **result}


def sync_status(store: Store | None) -> dict | None:
    """The member block of ``/api/patreon/status``: the latest sync run and the last
    one that finished, from the store (None without a store)."""
    if store is None:
        return None
    latest = member_sync.latest(store)
    finished = member_sync.last_finished(store)
    return {
        "synced": finished is not None,
        "last_sync": None if latest is None else latest.as_dict(),
        "last_finished_at": None if finished is None else finished.finished_at,
        "members": members.count(store),
    }
