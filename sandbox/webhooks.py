"""Webhooks: the registry behind `/api/oauth2/v2/webhooks`, and their delivery.

Delivery follows PATREON.md:
- each event is one JSON:API document (the `member` or the `post`), serialised once;
  the exact bytes sent are the bytes signed: `X-Patreon-Signature` is the lowercase
  hex HMAC-MD5 of the raw body keyed with the webhook's own secret;
- every webhook has its own FIFO queue; a 2xx pops the head and resets the failure
  count; anything else (or no answer within `webhook_timeout_s`) keeps the event
  queued, increments `num_consecutive_times_failed`, and retries on Patreon's
  schedule (`SandboxSettings.retry_delay_s`: 1 h, 3 h, 1 d, 3 d, weekly, scaled by
  SANDBOX_TIME_SCALE); after `pause_after` consecutive failures the webhook is
  `paused` and nothing is retried until `PATCH paused=false`, which resets the count
  and resends the queue at once, in order.
- delivery faults (the control API's `/_sandbox/webhook-faults`) bend that, as real
  deliveries get bent: `drop` loses an event (Patreon thinks it sent it), `delay`
  holds it (and the queue behind it) for `delay_s`, `reorder` holds it back until
  the next event with the same trigger has been queued and sends it after that one,
  `stale_retry` sends it and, after the next event with the same trigger, sends the
  same old body again (a retry of an older state arriving after a newer one).

A scheduler thread hands each due webhook to a short-lived delivery thread (one at a
time per webhook, so order holds; a slow receiver delays only its own webhook). Both
are daemon threads that log and carry on after any exception. Tests drive delivery
synchronously with `run_due()` and a fake transport instead.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from sandbox.counters import Counters
from sandbox.data import Member, Post, World
from sandbox.jsonapi import Query, Serializer
from sandbox.schema import SCHEMA, self_link
from sandbox.settings import SandboxSettings

log = logging.getLogger(__name__)

MEMBER_TRIGGERS = (
    "members:create",
    "members:update",
    "members:delete",
    "members:pledge:create",
    "members:pledge:update",
    "members:pledge:delete",
)
POST_TRIGGERS = ("posts:publish", "posts:update", "posts:delete")
V2_TRIGGERS = MEMBER_TRIGGERS + POST_TRIGGERS
USER_AGENT = "Patreon HTTP Robot 2.0 (sandbox)"
DELIVERY_LOG_SIZE = 1000

# (url, body, headers, timeout_s) -> HTTP status; raises on network errors/timeouts.
Transport = Callable[[str, bytes, dict[str, str], float], int]


def http_transport(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> int:
    """POST exactly `body`; no proxies from the environment (receivers are local)."""
    with requests.Session() as session:
        session.trust_env = False
        response = session.post(url, data=body, headers=headers, timeout=timeout_s, allow_redirects=False)
        response.close()
        return response.status_code


def sign(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.md5).hexdigest()


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# A captured real webhook body (maael/patreon-herald web/docs/patreon_api.md) and the
# docs' sample (Patreon/platform-documentation source/includes/_webhooks_v2.md): the
# included user carries none of these, and `campaign`/`user` carry `links.related`.
WEBHOOK_HIDDEN_USER_ATTRIBUTES = ("email", "is_email_verified", "can_see_nsfw")


def _webhook_query(include: dict[str, dict]) -> Query:
    everything = Query.everything(SCHEMA, include)
    fields = dict(everything.fields)
    fields["user"] = tuple(a for a in fields["user"] if a not in WEBHOOK_HIDDEN_USER_ATTRIBUTES)
    return Query(fields, include)


def _related_links(resource: dict[str, Any], base_url: str) -> None:
    """`links.related` on the to-one `campaign` and `user`, in the docs' sample's form."""
    paths = {"campaign": "campaigns", "user": "user"}
    for name, relationship in resource.get("relationships", {}).items():
        target = relationship.get("data")
        if name in paths and isinstance(target, dict):
            relationship["links"] = {"related": f"{base_url}/api/{paths[name]}/{target['id']}"}


def member_payload(world: World, member: Member, base_url: str) -> bytes:
    """Member with all attributes, its relationships, campaign/user/tiers included."""
    include = {"address": {}, "campaign": {}, "currently_entitled_tiers": {}, "user": {}}
    with world.lock:
        serializer = Serializer(SCHEMA, world, _webhook_query(include), lambda *_: True)
        document = serializer.document(member, "member", many=False)
    document["included"] = [r for r in document.get("included", []) if r["type"] != "address"]
    _related_links(document["data"], base_url)
    document["links"] = {"self": self_link("member", member.id, base_url)}
    return _encode(document)


def post_payload(world: World, post: Post, base_url: str) -> bytes:
    include = {"campaign": {}, "user": {}}
    with world.lock:
        serializer = Serializer(SCHEMA, world, _webhook_query(include), lambda *_: True)
        document = serializer.document(post, "post", many=False)
    _related_links(document["data"], base_url)
    document["links"] = {"self": self_link("post", post.id, base_url)}
    return _encode(document)


DELIVERY_FAULT_KINDS = ("drop", "delay", "reorder", "stale_retry")


@dataclass
class QueuedEvent:
    trigger: str
    body: bytes
    not_before: float = 0.0  # monotonic clock; a `delay` fault sets it
    fault: str | None = None  # the delivery fault that bent this event, if any


@dataclass
class DeliveryFault:
    id: str
    kind: str  # one of DELIVERY_FAULT_KINDS
    webhook_id: str | None = None  # None: every webhook
    trigger: str | None = None  # None: every trigger
    count: int | None = 1  # events still to bend; None: until cleared
    delay_s: float = 0.0
    applied: int = 0

    def matches(self, hook_id: str, trigger: str) -> bool:
        return self.webhook_id in (None, hook_id) and self.trigger in (None, trigger)

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "webhook_id": self.webhook_id,
            "trigger": self.trigger,
            "count": self.count,
            "delay_s": self.delay_s,
            "applied": self.applied,
        }


@dataclass
class Webhook:
    id: str
    client_id: str
    campaign_id: str
    uri: str
    triggers: list[str]
    secret: str
    paused: bool = False
    num_consecutive_times_failed: int = 0
    last_attempted_at: str | None = None
    queue: deque[QueuedEvent] = field(default_factory=deque)
    held: list[QueuedEvent] = field(default_factory=list)  # reorder/stale_retry, waiting
    next_attempt_at: float = 0.0  # monotonic clock
    in_flight: bool = False


class WebhookRegistry:
    def __init__(
        self,
        settings: SandboxSettings,
        counters: Counters,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        transport: Transport = http_transport,
    ):
        self.settings = settings
        self.counters = counters
        self.clock = clock
        self.wall_clock = wall_clock
        self.transport = transport
        self._cond = threading.Condition(threading.RLock())
        self._hooks: dict[str, Webhook] = {}
        self._next_id = 1
        self._log: deque[dict[str, Any]] = deque(maxlen=DELIVERY_LOG_SIZE)
        self._stopping = threading.Event()
        self._scheduler: threading.Thread | None = None
        self._faults: list[DeliveryFault] = []
        self._next_fault = 1
        self.on_change: Callable[[], None] = lambda: None  # persistence hook

    # ------------------------------------------------------------ registry

    def create(
        self,
        client_id: str,
        campaign_id: str,
        uri: str,
        triggers: list[str],
        secret: str | None = None,
    ) -> Webhook:
        with self._cond:
            hook = Webhook(
                id=str(self._next_id),
                client_id=client_id,
                campaign_id=campaign_id,
                uri=uri,
                triggers=list(dict.fromkeys(triggers)),
                secret=secret or secrets.token_urlsafe(32),
            )
            self._next_id += 1
            self._hooks[hook.id] = hook
        self.on_change()
        return hook

    def get(self, hook_id: str) -> Webhook | None:
        with self._cond:
            return self._hooks.get(hook_id)

    def all(self) -> list[Webhook]:
        with self._cond:
            return list(self._hooks.values())

    def update(
        self,
        hook_id: str,
        triggers: list[str] | None = None,
        uri: str | None = None,
        paused: bool | None = None,
    ) -> Webhook | None:
        with self._cond:
            hook = self._hooks.get(hook_id)
            if hook is None:
                return None
            if triggers is not None:
                hook.triggers = list(dict.fromkeys(triggers))
            if uri is not None:
                hook.uri = uri
            if paused is True:
                hook.paused = True
            elif paused is False:
                # Unpausing resends the queue now, starting the failure count afresh.
                hook.paused = False
                hook.num_consecutive_times_failed = 0
                hook.next_attempt_at = 0.0
                self._cond.notify_all()
        self.on_change()
        return hook

    def delete(self, hook_id: str) -> bool:
        with self._cond:
            deleted = self._hooks.pop(hook_id, None) is not None
        self.on_change()
        return deleted

    def publish(self, trigger: str, campaign_id: str, body: bytes) -> int:
        """Queue one event on every webhook of the campaign listening for `trigger`."""
        queued = 0
        with self._cond:
            for hook in self._hooks.values():
                if hook.campaign_id == campaign_id and trigger in hook.triggers:
                    self._enqueue(hook, QueuedEvent(trigger, body))
                    queued += 1
            if queued:
                self._cond.notify_all()
        if queued:
            self.on_change()
        return queued

    def _enqueue(self, hook: Webhook, event: QueuedEvent) -> None:
        """Queue `event`, bent by the first matching delivery fault (lock held)."""
        fault = self._take_fault(hook.id, event.trigger)
        kind = fault.kind if fault else None
        event.fault = kind
        if kind == "drop":
            self._log.append(
                {
                    "webhook_id": hook.id,
                    "trigger": event.trigger,
                    "status": None,
                    "error": None,
                    "ok": None,
                    "fault": "drop",
                    "attempted_at": self._wall_iso(),
                }
            )
            self.counters.incr("deliveries_dropped")
            return
        if kind == "reorder":
            hook.held.append(event)  # goes out after the next event with this trigger
            return
        if kind == "delay":
            event.not_before = self.clock() + fault.delay_s
        hook.queue.append(event)
        # Events held back for this trigger go out right after this newer one.
        waiting = [e for e in hook.held if e.trigger == event.trigger]
        if waiting:
            hook.held = [e for e in hook.held if e.trigger != event.trigger]
            hook.queue.extend(waiting)
        if kind == "stale_retry":
            hook.held.append(QueuedEvent(event.trigger, event.body, fault="stale_retry"))

    def _take_fault(self, hook_id: str, trigger: str) -> DeliveryFault | None:
        for fault in self._faults:
            if fault.matches(hook_id, trigger):
                fault.applied += 1
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    # ------------------------------------------------------------ delivery faults

    def add_fault(
        self,
        kind: str,
        webhook_id: str | None = None,
        trigger: str | None = None,
        count: int | None = 1,
        delay_s: float = 0.0,
    ) -> DeliveryFault:
        with self._cond:
            fault = DeliveryFault(f"d{self._next_fault}", kind, webhook_id, trigger, count, delay_s)
            self._next_fault += 1
            self._faults.append(fault)
            return fault

    def faults(self) -> list[dict[str, Any]]:
        with self._cond:
            return [fault.describe() for fault in self._faults]

    def clear_faults(self) -> dict[str, int]:
        """Remove every delivery fault and release every held event into its queue."""
        with self._cond:
            cleared = len(self._faults)
            self._faults = []
            released = 0
            for hook in self._hooks.values():
                released += len(hook.held)
                hook.queue.extend(hook.held)
                hook.held = []
            self._cond.notify_all()
        self.on_change()
        return {"cleared": cleared, "released": released}

    def _wall_iso(self) -> str:
        return datetime.fromtimestamp(self.wall_clock(), UTC).isoformat(timespec="milliseconds")

    def deliveries(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._cond:
            entries = list(self._log)
        return entries[-limit:] if limit else entries

    def queued(self) -> int:
        with self._cond:
            return sum(len(hook.queue) for hook in self._hooks.values())

    # ------------------------------------------------------------ delivery

    def _due(self, now: float) -> tuple[list[str], float | None]:
        """Webhooks ready to send now, and the wait until the next one is."""
        due: list[str] = []
        wait: float | None = None
        for hook in self._hooks.values():
            if hook.paused or hook.in_flight or not hook.queue:
                continue
            ready_at = max(hook.next_attempt_at, hook.queue[0].not_before)
            if ready_at <= now:
                due.append(hook.id)
            else:
                remaining = ready_at - now
                wait = remaining if wait is None else min(wait, remaining)
        return due, wait

    def run_due(self) -> int:
        """Deliver, synchronously, to every webhook that is due. Returns attempts made."""
        with self._cond:
            due, _ = self._due(self.clock())
            for hook_id in due:
                self._hooks[hook_id].in_flight = True
        return sum(self._drain(hook_id) for hook_id in due)

    def _drain(self, hook_id: str) -> int:
        """Send the webhook's queue in order until it is empty or a send fails."""
        attempts = 0
        try:
            while True:
                with self._cond:
                    hook = self._hooks.get(hook_id)
                    if hook is None or hook.paused or not hook.queue:
                        return attempts
                    if hook.queue[0].not_before > self.clock():
                        return attempts  # a delayed event holds the queue
                    event, uri, secret = hook.queue[0], hook.uri, hook.secret
                attempts += 1
                if not self._send(hook_id, event, uri, secret):
                    return attempts
        except Exception:  # never let delivery die; the loop will come back
            log.exception("webhook %s: delivery error", hook_id)
            return attempts
        finally:
            with self._cond:
                hook = self._hooks.get(hook_id)
                if hook is not None:
                    hook.in_flight = False
                self._cond.notify_all()

    def _send(self, hook_id: str, event: QueuedEvent, uri: str, secret: str) -> bool:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Patreon-Event": event.trigger,
            "X-Patreon-Signature": sign(secret, event.body),
        }
        started = self.clock()
        status: int | None = None
        error: str | None = None
        try:
            status = self.transport(uri, event.body, headers, self.settings.webhook_timeout_s)
        except Exception as ex:  # timeouts, refused connections, anything
            error = type(ex).__name__
        ok = status is not None and 200 <= status < 300
        now = self.clock()
        attempted_at = self._wall_iso()
        self.counters.incr("deliveries_attempted")
        self.counters.incr("deliveries_succeeded" if ok else "deliveries_failed")
        with self._cond:
            hook = self._hooks.get(hook_id)
            entry = {
                "webhook_id": hook_id,
                "trigger": event.trigger,
                "status": status,
                "error": error,
                "ok": ok,
                "attempted_at": attempted_at,
                "duration_ms": round((now - started) * 1000, 1),
            }
            if event.fault:
                entry["fault"] = event.fault
            if hook is not None:
                hook.last_attempted_at = attempted_at
                if ok:
                    if hook.queue and hook.queue[0] is event:
                        hook.queue.popleft()
                    hook.num_consecutive_times_failed = 0
                else:
                    hook.num_consecutive_times_failed += 1
                    failures = hook.num_consecutive_times_failed
                    hook.next_attempt_at = now + self.settings.retry_delay_s(failures)
                    if failures >= self.settings.pause_after:
                        hook.paused = True
                entry["num_consecutive_times_failed"] = hook.num_consecutive_times_failed
                entry["paused"] = hook.paused
            self._log.append(entry)
        log.info(
            "webhook %s %s -> %s%s",
            hook_id,
            event.trigger,
            status if status is not None else error,
            "" if ok else f" (failed {entry.get('num_consecutive_times_failed')}x)",
        )
        self.on_change()
        return ok

    def start(self) -> None:
        """Start the scheduler thread (idempotent)."""
        if self._scheduler is not None:
            return
        self._scheduler = threading.Thread(target=self._schedule, name="webhook-scheduler", daemon=True)
        self._scheduler.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()

    def _schedule(self) -> None:
        while not self._stopping.is_set():
            try:
                with self._cond:
                    due, wait = self._due(self.clock())
                    if not due:
                        self._cond.wait(timeout=wait if wait is not None else 60.0)
                        continue
                    for hook_id in due:
                        self._hooks[hook_id].in_flight = True
                for hook_id in due:
                    threading.Thread(
                        target=self._drain, args=(hook_id,), name=f"webhook-{hook_id}", daemon=True
                    ).start()
            except Exception:
                log.exception("webhook scheduler error")
                self._stopping.wait(1.0)
