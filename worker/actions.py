"""The worker's registry: ``build_registry`` decides which actions a worker serves.

Each handler is marked, where it is written, with the request payload it serves
(``@protocol.handles(actions.X)``; the payload class in ``wire.actions`` carries the
name, timeout and idempotency). The Patreon handlers live in ``patreon_actions`` and
are attached to the same registry.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from settings.config import WorkerSettings
from store import member_sync, members
from store.database import Store
from store.timestamps import utc_now_iso
from wire import protocol
from wire.actions import DebugCrash, DebugSleep, MembersState, MembersSync, Ping
from wire.codes import MEMBER_STATE_NOT_FOUND
from worker import patreon_actions
from worker.ping import PingInfo  # re-exported: callers build the registry with it

log = logging.getLogger(__name__)


@protocol.handles(DebugSleep)
def _debug_sleep(data: dict[str, Any], ctx: protocol.CallContext) -> dict[str, Any]:
    """Test-only: block a pool thread for ``ms`` milliseconds, like a slow Patreon call."""
    ms = data.get("ms")
    if not isinstance(ms, int) or isinstance(ms, bool) or not 0 <= ms <= 20_000:
        raise protocol.ActionError(protocol.INVALID_DATA, "ms must be an integer from 0 to 20000")
    time.sleep(ms / 1000.0)
    return {"slept_ms": ms}


CRASH_EXIT_CODE = 70  # sysexits.h EX_SOFTWARE: what an unexpected crash looks like to supervisord
CRASH_DELAY_S = 0.2  # long enough for the reply to leave the socket first


@protocol.handles(DebugCrash)
def _debug_crash(data: dict[str, Any], ctx: protocol.CallContext) -> dict[str, Any]:
    """Test-only: reply, then die at once without cleanup, like a crash after start
    (the watchdog's crash-loop tests need a worker that exits unexpectedly on demand)."""
    log.warning("debug.crash: exiting with %d in %g s (test-only action)", CRASH_EXIT_CODE, CRASH_DELAY_S)
    timer = threading.Timer(CRASH_DELAY_S, os._exit, args=(CRASH_EXIT_CODE,))
    timer.daemon = True
    timer.start()
    return {"exit_code": CRASH_EXIT_CODE, "pid": os.getpid()}


MAX_MEMBER_ID_CHARS = 128


def member_state(stored: members.StoredMember) -> dict[str, Any]:
    """The ``members.state`` reply for one row of the member table: the fields of the
    retired webhook-ordered table (issue 11) where they map, and where the state came from."""
    record = stored.record
    return {
        "memberId": record.member_id,
        "campaignId": record.campaign_id,
        "userId": record.user_id,
        "patronStatus": record.patron_status,
        "lastChargeStatus": record.last_charge_status,
        "entitledTierIds": list(record.entitled_tier_ids),
        "currentlyEntitledAmountCents": record.entitled_amount_cents,
        "willPayAmountCents": record.will_pay_amount_cents,
        "deleted": record.deleted,
        "source": stored.source,
        # The delivery applied provisionally (source "webhook"); null for API-sourced state.
        "lastEventId": stored.event_id,
        "updatedAt": stored.source_at,
    }


def state_action(store: Store) -> protocol.Handler:
    """The ``members.state`` action: ``{"member_id"}`` -> ``{"member": {...}}``, from the
    member table (``store.members``: Patreon's state, synced and refreshed)."""

    @protocol.handles(MembersState)
    def members_state(data: dict[str, Any], ctx: protocol.CallContext) -> dict[str, Any]:
        member_id = data.get("member_id")
        if not isinstance(member_id, str) or not member_id or len(member_id) > MAX_MEMBER_ID_CHARS:
            raise protocol.ActionError(protocol.INVALID_DATA, "member_id must be a member id string")
        # Patreon's member ids are lowercase UUIDs; the table keeps them so.
        stored = members.get(store, member_id.lower())
        if stored is None:
            raise protocol.ActionError(
                MEMBER_STATE_NOT_FOUND, "The member table has no member with this id", status=404
            )
        return {"member": member_state(stored)}

    return members_state


def sync_action(store: Store, request_sync) -> protocol.Handler:
    """The ``members.sync`` action: queue a full sync (``request_sync(reason)`` -> run id)."""

    @protocol.handles(MembersSync)
    def members_sync(data: dict[str, Any], ctx: protocol.CallContext) -> dict[str, Any]:
        if data:
            raise protocol.ActionError(protocol.INVALID_DATA, "members.sync takes no data")
        run = member_sync.get(store, request_sync("requested with the server key"))
        return {"sync": run.as_dict() if run else None}

    return members_sync


def build_registry(
    config: WorkerSettings,
    ping: PingInfo,
    store: Store | None = None,
    *,
    patreon: patreon_actions.PatreonActions | None = None,
    request_sync=None,
) -> protocol.ActionRegistry:
    registry = protocol.ActionRegistry()
    # ping is answered inline by the server loop; registering it here too keeps
    # dispatch() complete for callers that do not go through the loop.
    registry.add(protocol.handles(Ping)(lambda data, ctx: ping()))
    if config.test_actions:
        registry.add(_debug_sleep)
        registry.add(_debug_crash)
    store = store or Store(config.database_url)
    registry.add(state_action(store))
    if request_sync is None:
        def request_sync(reason: str) -> int:
            return member_sync.request(store, reason, utc_now_iso())
    registry.add(sync_action(store, request_sync))
    # Login, API reads and webhook management (one Patreon client per process).
    patreon = patreon_actions.attach(registry, config, store, patreon)
    ping.watch_edge(patreon.api.http.edge)
    return registry
