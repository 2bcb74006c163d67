"""Every action web may ask of the worker: its name, timeout, idempotency and message.

An action is declared once, here, by ``@action`` on the class of its request
payload: the decorator carries the name, the timeout (which covers the worker's own
retries and rate-limit waits, so it sits above the Patreon HTTP timeouts), whether a
retry is safe, and what the reply holds; the class's fields and docstring are the
request's documentation. The worker attaches a handler to the class with
``@handles(...)`` (``wire.protocol``), next to the handler; web sends an instance
with ``WorkerClient.send``. Both halves live where their program is, and this
contract sits between them, so web learns timeouts without loading the worker.

Payloads are frozen dataclasses, not pydantic models: the standard library is
enough to build a frame, and the worker still checks every field of ``data``
itself, in its own order and with its own error codes, because a frame is a
boundary and those codes are part of the HTTP API (docs/api.md). A model's
validation errors would replace them with its own.

``docs/api.md`` lists this table; ``tests/unit/test_action_registry.py`` holds the
two to each other.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, ClassVar

# A principal on the wire: "creator" (the creator's token) or {"session": "<id>"}
# (the user logged in through that web session).
Principal = str | dict[str, str]
CREATOR = "creator"


def session(session_id: str) -> dict[str, str]:
    return {"session": session_id}


@dataclasses.dataclass(frozen=True)
class ActionSpec:
    """The contract of one action, known to both sides."""

    name: str
    timeout_s: float
    idempotent: bool
    request: type
    reply: str  # what the reply holds, for the docs
    doc: str


ACTIONS: dict[str, ActionSpec] = {}


class Payload:
    """Base of every request payload: ``data`` is what crosses the wire (fields that
    are None are left out: the worker reads an absent field as "not given")."""

    spec: ClassVar[ActionSpec]

    def data(self) -> dict[str, Any]:
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)  # type: ignore[arg-type]
            if getattr(self, field.name) is not None
        }


def action(name: str, *, timeout_s: float, idempotent: bool, reply: str) -> Callable[[type], type]:
    """Declare an action by decorating its request payload class."""

    def declare(cls: type) -> type:
        if name in ACTIONS:
            raise ValueError(f"action {name!r} is declared twice")
        cls = dataclasses.dataclass(frozen=True)(cls)
        spec = ActionSpec(name, timeout_s, idempotent, cls, reply, inspect.cleandoc(cls.__doc__ or ""))
        cls.spec = spec
        ACTIONS[name] = spec
        return cls

    return declare


# -- liveness and test-only actions ---------------------------------------------------
@action("ping", timeout_s=1.0, idempotent=True, reply="{pong, pid, uptime_s, version, in_flight, mode}")
class Ping(Payload):
    """Is the worker alive, and which process is it. Answered inline by the server loop."""


@action("debug.sleep", timeout_s=30.0, idempotent=False, reply="{slept_ms}")
class DebugSleep(Payload):
    """Test-only (BRIDGE_TEST_ACTIONS=1): block a pool thread for ``ms`` (0..20000)."""

    ms: int


@action("debug.crash", timeout_s=2.0, idempotent=False, reply="{exit_code, pid}")
class DebugCrash(Payload):
    """Test-only (BRIDGE_TEST_ACTIONS=1): reply, then exit 70 without cleanup."""


# -- members: one row of the member table (store.members) -------------------------------
@action("members.state", timeout_s=2.0, idempotent=True, reply="{member: {...}}")
class MembersState(Payload):
    """One member as the member table holds it (synced and refreshed from Patreon)."""

    member_id: str


@action("members.sync", timeout_s=5.0, idempotent=True, reply="{sync: {id, reason, requested_at, running, ...}}")
class MembersSync(Payload):
    """Ask for a full member sync now; a request already waiting is reused."""


# -- login. Token grants are never retried --------------------------------------------
@action(
    "oauth.exchange",
    timeout_s=30.0,
    idempotent=False,
    reply="{user, campaign_ids, tokens: {expires_in, scope, token_type}}",
)
class OAuthExchange(Payload):
    """Trade the code Patreon sent back for tokens, saved for ``session``."""

    code: str
    redirect_uri: str
    session: str


@action("oauth.refresh", timeout_s=20.0, idempotent=False, reply="{tokens: {expires_in, scope, token_type}}")
class OAuthRefresh(Payload):
    """Rotate the principal's tokens now."""

    principal: Principal


@action("oauth.forget", timeout_s=5.0, idempotent=True, reply="{forgotten: bool}")
class OAuthForget(Payload):
    """Drop a session's tokens (logout)."""

    session: str


# -- API reads. members/posts.list cover all=true (10,000 members = 10 pages); web passes
# a shorter timeout for a single page -------------------------------------------------
@action("identity.get", timeout_s=30.0, idempotent=True, reply="JSON:API document")
class IdentityGet(Payload):
    """The principal's Patreon user."""

    principal: Principal
    params: dict[str, str]


@action("campaigns.list", timeout_s=30.0, idempotent=True, reply="JSON:API document")
class CampaignsList(Payload):
    """The principal's campaigns."""

    principal: Principal
    params: dict[str, str]


@action("members.list", timeout_s=120.0, idempotent=True, reply="JSON:API document (pages merged if all)")
class MembersList(Payload):
    """One page of a campaign's members, or every page with ``all``."""

    principal: Principal
    campaign_id: str
    params: dict[str, str]
    all: bool = False


@action("members.get", timeout_s=30.0, idempotent=True, reply="JSON:API document")
class MembersGet(Payload):
    """One member."""

    principal: Principal
    member_id: str
    params: dict[str, str]


@action("posts.list", timeout_s=120.0, idempotent=True, reply="JSON:API document (pages merged if all)")
class PostsList(Payload):
    """One page of a campaign's posts, or every page with ``all``."""

    principal: Principal
    campaign_id: str
    params: dict[str, str]
    all: bool = False


@action("posts.get", timeout_s=30.0, idempotent=True, reply="JSON:API document")
class PostsGet(Payload):
    """One post."""

    principal: Principal
    post_id: str
    params: dict[str, str]


# -- webhook management, with the creator's token. Writes are never retried -------------
@action("webhooks.list", timeout_s=30.0, idempotent=True, reply="{webhooks: [...]}")
class WebhooksList(Payload):
    """Every webhook of the creator, each with whether its secret is stored."""


@action("webhooks.create", timeout_s=30.0, idempotent=False, reply="{webhook: {..., secret}}")
class WebhooksCreate(Payload):
    """Create a webhook and store its secret; ``campaign_id`` may be left out when
    the creator has one campaign."""

    uri: str
    triggers: list[str]
    campaign_id: str | None = None


@action("webhooks.update", timeout_s=30.0, idempotent=False, reply="{webhook: {...}}")
class WebhooksUpdate(Payload):
    """Change any of paused, triggers, uri."""

    webhook_id: str
    paused: bool | None = None
    triggers: list[str] | None = None
    uri: str | None = None


@action("webhooks.delete", timeout_s=30.0, idempotent=False, reply="{deleted: id}")
class WebhooksDelete(Payload):
    """Delete a webhook and its stored secret."""

    webhook_id: str
