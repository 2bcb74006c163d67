"""The control API under `/_sandbox/` (not a Patreon path): drive the sandbox.

JSON in, JSON out; bad input is a 400 `{"error": ..., "code": ...}`, an unknown
member, post, fault or token a 404. `GET /_sandbox` lists every endpoint with the
docstring of its handler; README.md ("Sandbox mode") has curl examples.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import falcon

from sandbox.counters import Counters
from sandbox.data import CAMPAIGN_ID, CREATOR_ID, Member, MemberConflict, Post, World
from sandbox.edge import EdgeGuard
from sandbox.errors import CONTROL_PREFIX, ControlError, is_control
from sandbox.faults import FaultInjector
from sandbox.oauth import TokenStore
from sandbox.ratelimit import RateLimiter
from sandbox.settings import SandboxSettings
from sandbox.webhooks import (
    DELIVERY_FAULT_KINDS,
    MEMBER_TRIGGERS,
    POST_TRIGGERS,
    WebhookRegistry,
    member_payload,
    post_payload,
)


def _body(req: falcon.Request) -> dict[str, Any]:
    raw = req.bounded_stream.read()
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ControlError(400, "bad_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ControlError(400, "bad_json", "The request body must be a JSON object.")
    return body


def _optional_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise ControlError(400, f"bad_{name}", f"'{name}' must be a non-empty string.")
    return value.strip()


def _optional_int(body: dict[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    if name not in body or body[name] is None:
        return default
    value = body[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ControlError(400, f"bad_{name}", f"'{name}' must be an integer in {low}..{high}.")
    return value


def _optional_seconds(body: dict[str, Any], name: str, high: float = 10 * 365 * 86400) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= high:
        raise ControlError(400, f"bad_{name}", f"'{name}' must be a number of seconds > 0.")
    return float(value)


def _optional_bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ControlError(400, f"bad_{name}", f"'{name}' must be true or false.")
    return value


class Sandbox:
    """The state the control API drives, and how a change becomes webhook events."""

    def __init__(
        self,
        settings: SandboxSettings,
        world: World,
        tokens: TokenStore,
        webhooks: WebhookRegistry,
        faults: FaultInjector,
        counters: Counters,
        wall_clock: Callable[[], float],
        limiter: RateLimiter,
        edge: EdgeGuard,
    ):
        self.app: falcon.App | None = None  # set by app.build once the app exists
        self.state_file = None  # set by app.build: a persistence.StateFile, or None
        self.restored = False  # True when build() restored a saved state
        self.edge = edge
        self.limiter = limiter
        self.settings = settings
        self.world = world
        self.tokens = tokens
        self.webhooks = webhooks
        self.faults = faults
        self.counters = counters
        self.wall_clock = wall_clock

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall_clock(), UTC)

    def fire_member(self, member: Member, *triggers: str) -> int:
        body = member_payload(self.world, member, self.settings.base_url)
        return sum(self.webhooks.publish(t, member.campaign_id, body) for t in triggers)

    def fire_post(self, post: Post, trigger: str) -> int:
        body = post_payload(self.world, post, self.settings.base_url)
        return self.webhooks.publish(trigger, post.campaign_id, body)

    def member(self, member_id: str) -> Member:
        member = self.world.members.get(member_id)
        if member is None:
            raise ControlError(404, "unknown_member", f"No member with id {member_id}.")
        return member

    def post(self, post_id: str) -> Post:
        post = self.world.posts.get(post_id)
        if post is None:
            raise ControlError(404, "unknown_post", f"No post with id {post_id}.")
        return post

    def tier_id(self, body: dict[str, Any]) -> str | None:
        tier_id = _optional_str(body, "tier_id")
        if tier_id is not None and tier_id not in self.world.tiers:
            raise ControlError(
                400,
                "unknown_tier",
                f"No tier {tier_id}; tiers are {', '.join(self.world.tiers)}.",
            )
        return tier_id

    def summary(self, member: Member) -> dict[str, Any]:
        user = self.world.users[member.user_id]
        return {
            "id": member.id,
            "user_id": member.user_id,
            "email": user.email,
            "full_name": user.full_name,
            "patron_status": member.patron_status,
            "last_charge_status": member.last_charge_status,
            "tier_ids": list(member.tier_ids),
            "currently_entitled_amount_cents": member.currently_entitled_amount_cents,
        }

    def state(self) -> dict[str, Any]:
        counters = self.counters.snapshot()
        with self.world.lock:
            world = {
                "campaign_id": CAMPAIGN_ID,
                "creator_user_id": CREATOR_ID,
                "members": len(self.world.members),
                "users": len(self.world.users),
                "posts": len(self.world.posts),
                "patron_count": self.world.patron_count(),
                "tiers": [
                    {"id": t.id, "title": t.title, "amount_cents": t.amount_cents}
                    for t in self.world.tiers.values()
                ],
            }
        return world | {
            "state_dir": str(self.state_file.folder) if self.state_file else None,
            "restored": self.restored,
            "webhooks": len(self.webhooks.all()),
            "faults_active": len(self.faults.list()),
            "tokens_issued": counters["tokens_issued"],
            "token_grants": counters["token_grants"],
            "tokens": self.tokens.stats(),
            "requests": counters["requests"],
            "api_requests": counters["api_requests"],
            "throttled": counters["throttled"],
            "injected": counters["injected"],
            "delayed": counters["delayed"],
            "edge": {"blocks": counters["edge_blocks"], "refused": counters["edge_refused"]},
            "deliveries_dropped": counters["deliveries_dropped"],
            "deliveries": {
                "attempted": counters["deliveries_attempted"],
                "succeeded": counters["deliveries_succeeded"],
                "failed": counters["deliveries_failed"],
                "queued": self.webhooks.queued(),
            },
        }


# ---------------------------------------------------------------- resources


class Index:
    """GET: this list of control endpoints."""

    def __init__(self, routes: list[tuple[str, str, str]]):
        self.routes = routes

    def on_get(self, req, resp):
        resp.media = {
            "endpoints": [{"method": method, "path": path, "doc": doc} for method, path, doc in self.routes]
        }


class State:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_get(self, req, resp):
        """Counts: members, tokens issued, token grants, requests, 429s, deliveries."""
        resp.media = self.sandbox.state()


class ResetCounters:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_post(self, req, resp):
        """Zero the request, grant, throttle, fault and delivery counters."""
        self.sandbox.counters.reset()
        resp.media = self.sandbox.state()


class Members:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_post(self, req, resp):
        """{tier_id?, email?, full_name?, user_id?}: new active patron; fires
        members:create and members:pledge:create."""
        sb = self.sandbox
        body = _body(req)
        email = _optional_str(body, "email")
        if email is not None and ("@" not in email or " " in email):
            raise ControlError(400, "bad_email", "'email' must look like an email address.")
        full_name = _optional_str(body, "full_name")
        user_id = _optional_str(body, "user_id")
        with sb.world.lock:
            tier_id = sb.tier_id(body)
            if user_id is not None and user_id not in sb.world.users:
                raise ControlError(404, "unknown_user", f"No user with id {user_id}.")
            try:
                member = sb.world.add_member(
                    sb.now(), tier_id=tier_id, email=email, full_name=full_name, user_id=user_id
                )
            except MemberConflict:
                raise ControlError(
                    409, "already_member", "That user is the creator or already a member."
                ) from None
            queued = sb.fire_member(member, "members:create", "members:pledge:create")
            resp.status = falcon.HTTP_201
            resp.media = sb.summary(member) | {"events_queued": queued}


class MemberResource:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_get(self, req, resp, member_id):
        """The member's current state."""
        with self.sandbox.world.lock:
            resp.media = self.sandbox.summary(self.sandbox.member(member_id))

    def on_delete(self, req, resp, member_id):
        """Remove the member; fires members:delete and members:pledge:delete
        (payload: its last state)."""
        sb = self.sandbox
        with sb.world.lock:
            member = sb.member(member_id)
            summary = sb.summary(member)
            queued = sb.fire_member(member, "members:delete", "members:pledge:delete")
            sb.world.remove_member(member)
        resp.media = summary | {"deleted": True, "events_queued": queued}


class MemberUpgrade:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_post(self, req, resp, member_id):
        """{tier_id?}: move to that tier (default: the next tier up); fires
        members:update and members:pledge:update."""
        sb = self.sandbox
        body = _body(req)
        with sb.world.lock:
            member = sb.member(member_id)
            tier_id = sb.tier_id(body)
            tier = sb.world.tiers[tier_id] if tier_id else sb.world.next_tier_up(member)
            if tier is None:
                raise ControlError(400, "no_higher_tier", "The member is on the highest tier.")
            sb.world.change_tier(member, tier, sb.now())
            queued = sb.fire_member(member, "members:update", "members:pledge:update")
            resp.media = sb.summary(member) | {"events_queued": queued}


class MemberDecline:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_post(self, req, resp, member_id):
        """A declined charge: declined_patron / Declined; fires members:update and
        members:pledge:update. Entitled tiers stay until the period ends."""
        sb = self.sandbox
        _body(req)
        with sb.world.lock:
            member = sb.member(member_id)
            sb.world.decline(member, sb.now())
            queued = sb.fire_member(member, "members:update", "members:pledge:update")
            resp.media = sb.summary(member) | {"events_queued": queued}


class Posts:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_post(self, req, resp):
        """{title?, content?, is_public?, is_paid?}: publish a post; fires posts:publish."""
        sb = self.sandbox
        body = _body(req)
        title = _optional_str(body, "title")
        content = _optional_str(body, "content")
        is_public = _optional_bool(body, "is_public", True)
        is_paid = _optional_bool(body, "is_paid", False)
        with sb.world.lock:
            post = sb.world.publish_post(sb.now(), title, content, is_public, is_paid)
            queued = sb.fire_post(post, "posts:publish")
        resp.status = falcon.HTTP_201
        resp.media = {"id": post.id, "title": post.title, "events_queued": queued}


class PostResource:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_patch(self, req, resp, post_id):
        """{title?, content?}: edit a post; fires posts:update."""
        sb = self.sandbox
        body = _body(req)
        title = _optional_str(body, "title")
        content = _optional_str(body, "content")
        with sb.world.lock:
            post = sb.world.update_post(sb.post(post_id), title, content)
            queued = sb.fire_post(post, "posts:update")
        resp.media = {"id": post.id, "title": post.title, "events_queued": queued}

    def on_delete(self, req, resp, post_id):
        """Delete a post; fires posts:delete (payload: its last state)."""
        sb = self.sandbox
        with sb.world.lock:
            post = sb.post(post_id)
            queued = sb.fire_post(post, "posts:delete")
            sb.world.remove_post(post)
        resp.media = {"id": post_id, "deleted": True, "events_queued": queued}


class Events:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_post(self, req, resp):
        """{trigger, id}: fire one trigger for an existing member (members:*) or post
        (posts:*) without changing it."""
        sb = self.sandbox
        body = _body(req)
        trigger = _optional_str(body, "trigger")
        resource_id = _optional_str(body, "id")
        if trigger not in MEMBER_TRIGGERS + POST_TRIGGERS or resource_id is None:
            raise ControlError(400, "bad_event", "Send {trigger: a v2 trigger, id: a member or post id}.")
        with sb.world.lock:
            if trigger in MEMBER_TRIGGERS:
                queued = sb.fire_member(sb.member(resource_id), trigger)
            else:
                queued = sb.fire_post(sb.post(resource_id), trigger)
        resp.media = {"trigger": trigger, "id": resource_id, "events_queued": queued}


class Faults:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_get(self, req, resp):
        """Active faults."""
        resp.media = {"faults": self.sandbox.faults.list()}

    def on_post(self, req, resp):
        """{path, match?: prefix|exact, method?, latency_ms?, answer_latency_ms?, status?,
        count?: n|null, retry_after?, body?, html?}: delay and/or fail the next `count`
        matching requests (default 1; null = until cleared); answer_latency_ms delays the
        answer after the request was served (a create stored, its answer late); html: true
        answers with the edge's HTML page (Cloudflare-like) instead of JSON."""
        body = _body(req)
        path = body.get("path")
        if not isinstance(path, str) or not path.startswith("/") or is_control(path):
            raise ControlError(400, "bad_path", "'path' must be a Patreon path starting with '/'.")
        match = body.get("match", "prefix")
        if match not in ("prefix", "exact"):
            raise ControlError(400, "bad_match", "'match' must be 'prefix' or 'exact'.")
        method = body.get("method")
        if method is not None and (not isinstance(method, str) or not method.isalpha()):
            raise ControlError(400, "bad_method", "'method' must be an HTTP method.")
        latency_ms = _optional_int(body, "latency_ms", 0, 0, 120_000)
        answer_latency_ms = _optional_int(body, "answer_latency_ms", 0, 0, 120_000)
        status = _optional_int(body, "status", None, 400, 599)
        # Absent: the next request only. null: every matching request until cleared.
        until_cleared = "count" in body and body["count"] is None
        count = None if until_cleared else _optional_int(body, "count", 1, 1, 1_000_000)
        retry_after = _optional_int(body, "retry_after", None, 0, 86_400)
        html = _optional_bool(body, "html", False)
        if not latency_ms and not answer_latency_ms and status is None:
            raise ControlError(
                400, "empty_fault", "Give 'latency_ms', 'answer_latency_ms', 'status' or both."
            )
        if html and (status is None or body.get("body") is not None):
            raise ControlError(400, "bad_html", "'html' needs a 'status' and no 'body'.")
        fault = self.sandbox.faults.add(
            path=path,
            match=match,
            method=method.upper() if method else None,
            latency_ms=latency_ms,
            answer_latency_ms=answer_latency_ms,
            status=status,
            count=count,
            retry_after=retry_after,
            body=body.get("body"),
            html=html,
        )
        resp.status = falcon.HTTP_201
        resp.media = fault.describe()

    def on_delete(self, req, resp):
        """Clear every fault."""
        resp.media = {"cleared": self.sandbox.faults.clear()}


class FaultResource:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_delete(self, req, resp, fault_id):
        """Clear one fault."""
        if not self.sandbox.faults.remove(fault_id):
            raise ControlError(404, "unknown_fault", f"No fault {fault_id}.")
        resp.media = {"deleted": fault_id}


class TokensExpire:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_post(self, req, resp):
        """{access_token} | {user_id} | {all: true}: expire access tokens now (API
        calls get 401); their refresh tokens keep working."""
        body = _body(req)
        tokens = self.sandbox.tokens
        if _optional_str(body, "access_token"):
            expired = tokens.expire(access_token=body["access_token"])
            if not expired:
                raise ControlError(404, "unknown_token", "No such access token.")
        elif _optional_str(body, "user_id"):
            expired = tokens.expire(user_id=str(body["user_id"]))
        elif body.get("all") is True:
            expired = tokens.expire(everything=True)
        else:
            raise ControlError(400, "bad_request", "Send access_token, user_id or all: true.")
        resp.media = {"expired": expired}


class TokensRevoke:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_post(self, req, resp):
        """{token} | {user_id} | {all: true}: revoke access AND refresh tokens (the whole
        grant family of `token`); a refresh then gets invalid_grant."""
        body = _body(req)
        tokens = self.sandbox.tokens
        if _optional_str(body, "token"):
            revoked = tokens.revoke(token=body["token"])
            if not revoked:
                raise ControlError(404, "unknown_token", "No such token.")
        elif _optional_str(body, "user_id"):
            revoked = tokens.revoke(user_id=str(body["user_id"]))
        elif body.get("all") is True:
            revoked = tokens.revoke(everything=True)
        else:
            raise ControlError(400, "bad_request", "Send token, user_id or all: true.")
        resp.media = {"revoked": revoked}


class TokensEarlyExpiry:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_get(self, req, resp):
        """The early-expiry age in force (null: tokens live their full expires_in)."""
        resp.media = {"after_s": self.sandbox.tokens.early_expiry_s}

    def on_post(self, req, resp):
        """{after_s: n | null}: every access token (issued before or after) stops
        working n real seconds after it was issued, whatever expires_in said, as live
        tokens have been seen failing around day 20 of 31; refresh tokens keep
        working. null restores full lifetimes."""
        body = _body(req)
        if "after_s" not in body:
            raise ControlError(400, "bad_after_s", "Send {after_s: seconds or null}.")
        self.sandbox.tokens.early_expiry_s = _optional_seconds(body, "after_s")
        resp.media = {"after_s": self.sandbox.tokens.early_expiry_s}


class Edge:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_get(self, req, resp):
        """The edge block: thresholds, 4xx counted per client IP, IPs blocked (s left)."""
        resp.media = self.sandbox.edge.describe()

    def on_post(self, req, resp):
        """{threshold_4xx?, window_s?, block_s?}: change the block's thresholds (real
        seconds): `threshold_4xx` 4xx answers within `window_s` block the IP for
        `block_s` (Patreon: about 2,000 in 600 s)."""
        body = _body(req)
        threshold = _optional_int(body, "threshold_4xx", None, 1, 10_000_000)
        self.sandbox.edge.configure(
            threshold, _optional_seconds(body, "window_s"), _optional_seconds(body, "block_s")
        )
        resp.media = self.sandbox.edge.describe()

    def on_delete(self, req, resp):
        """Lift every block and forget the counted 4xx."""
        resp.media = {"lifted": self.sandbox.edge.clear()} | self.sandbox.edge.describe()


class EdgeBlock:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_post(self, req, resp):
        """{ip?, seconds?}: block an IP now (default: the caller's, for block_s)."""
        body = _body(req)
        ip = _optional_str(body, "ip") or req.remote_addr or "unknown"
        self.sandbox.edge.block(ip, _optional_seconds(body, "seconds"))
        resp.media = self.sandbox.edge.describe()


class WebhookFaults:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_get(self, req, resp):
        """Active delivery faults."""
        resp.media = {"faults": self.sandbox.webhooks.faults()}

    def on_post(self, req, resp):
        """{kind: drop|delay|reorder|stale_retry, webhook_id?, trigger?, count?: n|null,
        delay_s?}: bend the next `count` matching events (default 1; null = until
        cleared). drop: lost; delay: held delay_s (the queue waits behind it);
        reorder: sent after the next event with the same trigger; stale_retry: sent,
        then sent again (same body) after the next event with the same trigger."""
        body = _body(req)
        kind = body.get("kind")
        if kind not in DELIVERY_FAULT_KINDS:
            raise ControlError(400, "bad_kind", f"'kind' must be one of {', '.join(DELIVERY_FAULT_KINDS)}.")
        webhook_id = _optional_str(body, "webhook_id")
        if webhook_id is not None and self.sandbox.webhooks.get(webhook_id) is None:
            raise ControlError(404, "unknown_webhook", f"No webhook {webhook_id}.")
        trigger = _optional_str(body, "trigger")
        if trigger is not None and trigger not in MEMBER_TRIGGERS + POST_TRIGGERS:
            raise ControlError(400, "bad_trigger", "'trigger' must be a v2 trigger.")
        until_cleared = "count" in body and body["count"] is None
        count = None if until_cleared else _optional_int(body, "count", 1, 1, 1_000_000)
        delay_s = _optional_seconds(body, "delay_s", 86_400)
        if kind == "delay" and delay_s is None:
            raise ControlError(400, "bad_delay_s", "A delay fault needs 'delay_s'.")
        fault = self.sandbox.webhooks.add_fault(kind, webhook_id, trigger, count, delay_s or 0.0)
        resp.status = falcon.HTTP_201
        resp.media = fault.describe()

    def on_delete(self, req, resp):
        """Clear every delivery fault; events held by reorder/stale_retry are queued."""
        resp.media = self.sandbox.webhooks.clear_faults()


class Deliveries:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_get(self, req, resp):
        """?limit=n: the webhook delivery log, oldest first (webhook id, trigger,
        status or error, attempt time)."""
        raw = req.get_param("limit")
        limit = None
        if raw is not None:
            if not raw.isdigit() or not 1 <= int(raw) <= 1000:
                raise ControlError(400, "bad_limit", "'limit' must be an integer in 1..1000.")
            limit = int(raw)
        resp.media = {"deliveries": self.sandbox.webhooks.deliveries(limit)}


class Webhooks:
    def __init__(self, sandbox: Sandbox):
        self.sandbox = sandbox

    def on_get(self, req, resp):
        """Every webhook, WITH its secret and queue length (sandbox-only view)."""
        resp.media = {
            "webhooks": [
                {
                    "id": hook.id,
                    "client_id": hook.client_id,
                    "campaign_id": hook.campaign_id,
                    "uri": hook.uri,
                    "triggers": list(hook.triggers),
                    "secret": hook.secret,
                    "paused": hook.paused,
                    "num_consecutive_times_failed": hook.num_consecutive_times_failed,
                    "last_attempted_at": hook.last_attempted_at,
                    "queued": len(hook.queue),
                    "held": len(hook.held),
                }
                for hook in self.sandbox.webhooks.all()
            ]
        }


def add_routes(app: falcon.App, sandbox: Sandbox) -> None:
    routes = [
        ("/state", State(sandbox)),
        ("/state/reset-counters", ResetCounters(sandbox)),
        ("/members", Members(sandbox)),
        ("/members/{member_id}", MemberResource(sandbox)),
        ("/members/{member_id}/upgrade", MemberUpgrade(sandbox)),
        ("/members/{member_id}/decline", MemberDecline(sandbox)),
        ("/posts", Posts(sandbox)),
        ("/posts/{post_id}", PostResource(sandbox)),
        ("/events", Events(sandbox)),
        ("/faults", Faults(sandbox)),
        ("/faults/{fault_id}", FaultResource(sandbox)),
        ("/tokens/expire", TokensExpire(sandbox)),
        ("/tokens/revoke", TokensRevoke(sandbox)),
        ("/tokens/early-expiry", TokensEarlyExpiry(sandbox)),
        ("/edge", Edge(sandbox)),
        ("/edge/block", EdgeBlock(sandbox)),
        ("/webhook-faults", WebhookFaults(sandbox)),
        ("/deliveries", Deliveries(sandbox)),
        ("/webhooks", Webhooks(sandbox)),
    ]
    listing: list[tuple[str, str, str]] = []
    for suffix, resource in routes:
        path = CONTROL_PREFIX + suffix
        app.add_route(path, resource)
        for method in ("get", "post", "patch", "delete"):
            handler = getattr(resource, f"on_{method}", None)
            if handler is not None:
                doc = " ".join((handler.__doc__ or "").split())
                listing.append((method.upper(), path, doc))
    app.add_route(CONTROL_PREFIX, Index(listing))
