"""The sandbox's state across its own restart: one JSON file, written atomically.

Kept: the world (users, members, tiers, posts, ... and the seeded generator's
position, so new ids never repeat), every token (access and refresh, with their
expiry, so the bridge's sessions and its rotated creator pair still work after a
restart), every webhook with its queue, held events and failure count (queued
deliveries survive). Not kept: pending authorization codes (they live 10 minutes),
counters, the delivery log, injected faults, the edge block's counts.

The file belongs to the configuration that made it: if the seed, member count,
client, creator pair or seeded webhook differ, it is ignored (logged) and the sandbox
starts from the seed. Every change is saved at once (a token refresh is on disk
before its answer leaves) by writing a temporary file in the same folder, fsyncing it
and renaming it over the old one, so a crash leaves the old or the new file, never a
half-written one. Times on the monotonic clock are stored as wall-clock times.

Lock order: the world's lock, then this module's, then the token store's and the
webhook registry's (taken briefly to copy their state).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sandbox.data import (
    Address,
    Benefit,
    Campaign,
    Goal,
    Member,
    PledgeEvent,
    Post,
    Tier,
    User,
    World,
)
from sandbox.oauth import Grant, TokenStore
from sandbox.settings import SandboxSettings
from sandbox.webhooks import QueuedEvent, Webhook, WebhookRegistry

log = logging.getLogger(__name__)

FORMAT = 1
TABLES: dict[str, type] = {
    "users": User,
    "campaigns": Campaign,
    "tiers": Tier,
    "benefits": Benefit,
    "goals": Goal,
    "members": Member,
    "addresses": Address,
    "pledge_events": PledgeEvent,
    "posts": Post,
}
WORLD_COUNTERS = (
    "version",
    "_next_user",
    "_next_patron_number",
    "_next_member_seq",
    "_next_address",
    "_next_event",
    "_next_post",
)


def fingerprint(settings: SandboxSettings) -> dict[str, Any]:
    """The settings a saved state depends on."""
    return {
        "seed": settings.seed,
        "members": settings.members,
        "client_id": settings.client_id,
        "creator_access_token": settings.creator_access_token,
        "creator_refresh_token": settings.creator_refresh_token,
        "webhook_uri": settings.webhook_uri,
        "webhook_secret": settings.webhook_secret,
    }


class StateFile:
    def __init__(
        self,
        path: Path,
        settings: SandboxSettings,
        world: World,
        tokens: TokenStore,
        webhooks: WebhookRegistry,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ):
        self.path = path
        self.settings = settings
        self.world = world
        self.tokens = tokens
        self.webhooks = webhooks
        self.clock = clock
        self.wall_clock = wall_clock
        self._lock = threading.Lock()
        self._world_json: tuple[int, str] | None = None  # (world version, its JSON)
        self.saves = 0

    # ------------------------------------------------------------ time

    def _to_wall(self, monotonic: float) -> float:
        return self.wall_clock() + (monotonic - self.clock())

    def _to_monotonic(self, wall: float) -> float:
        return self.clock() + (wall - self.wall_clock())

    # ------------------------------------------------------------ saving

    def attach(self) -> None:
        """Save on every change from now on."""
        self.world.on_change = self.save
        self.tokens.on_change = self.save
        self.webhooks.on_change = self.save

    def save(self) -> None:
        with self.world.lock, self._lock:
            text = self._render()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
                raise
            self.saves += 1

    def _render(self) -> str:
        world = self.world
        if self._world_json is None or self._world_json[0] != world.version:
            self._world_json = (world.version, json.dumps(self._world_state(), separators=(",", ":")))
        tokens = json.dumps(self._token_state(), separators=(",", ":"))
        webhooks = json.dumps(self._webhook_state(), separators=(",", ":"))
        head = json.dumps({"format": FORMAT, "fingerprint": fingerprint(self.settings)})
        return f'{head[:-1]},"world":{self._world_json[1]},"tokens":{tokens},"webhooks":{webhooks}}}\n'

    def _world_state(self) -> dict[str, Any]:
        world = self.world
        state: dict[str, Any] = {
            name: [dataclasses.asdict(obj) for obj in getattr(world, name).values()] for name in TABLES
        }
        state["counters"] = {name: getattr(world, name) for name in WORLD_COUNTERS}
        state["rng"] = world.rng.getstate()
        return state

    def _token_state(self) -> dict[str, Any]:
        tokens = self.tokens
        with tokens._lock:
            grants = list(tokens._by_access.values())
        return {
            "early_expiry_s": tokens.early_expiry_s,
            "grants": [
                dataclasses.asdict(grant)
                | {"expires_at": self._to_wall(grant.expires_at), "issued_at": self._to_wall(grant.issued_at)}
                for grant in grants
            ],
        }

    def _webhook_state(self) -> dict[str, Any]:
        hooks = []
        registry = self.webhooks
        with registry._cond:
            for hook in registry._hooks.values():
                hooks.append(
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
                        "next_attempt_at": self._to_wall(hook.next_attempt_at),
                        "queue": [self._event(e) for e in hook.queue],
                        "held": [self._event(e) for e in hook.held],
                    }
                )
            next_id = registry._next_id
        return {"next_id": next_id, "hooks": hooks}

    def _event(self, event: QueuedEvent) -> dict[str, Any]:
        return {
            "trigger": event.trigger,
            "body": event.body.decode("utf-8"),
            "not_before": self._to_wall(event.not_before),
            "fault": event.fault,
        }

    # ------------------------------------------------------------ loading

    def read(self) -> dict[str, Any] | None:
        """The saved state if there is one for these settings, else None (logged)."""
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as ex:
            log.warning(
                "sandbox state %s unreadable (%s): starting from the seed", self.path, type(ex).__name__
            )
            return None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            log.warning("sandbox state %s has an unknown format: starting from the seed", self.path)
            return None
        if state.get("fingerprint") != fingerprint(self.settings):
            log.warning("sandbox state %s was made with other settings: starting from the seed", self.path)
            return None
        return state

    def restore(self, state: dict[str, Any]) -> None:
        self._restore_world(state["world"])
        self._restore_tokens(state["tokens"])
        self._restore_webhooks(state["webhooks"])

    def _restore_world(self, state: dict[str, Any]) -> None:
        world = self.world
        with world.lock:
            for name, cls in TABLES.items():
                table = getattr(world, name)
                table.clear()
                for fields in state[name]:
                    obj = cls(**fields)
                    table[obj.id] = obj
            world.member_by_user.clear()
            for member in world.members.values():
                world.member_by_user[member.user_id] = member.id
            for name, value in state["counters"].items():
                setattr(world, name, value)
            version, internal, gauss = state["rng"]
            world.rng.setstate((version, tuple(internal), gauss))

    def _restore_tokens(self, state: dict[str, Any]) -> None:
        tokens = self.tokens
        with tokens._lock:
            tokens._by_access.clear()
            tokens._by_refresh.clear()
            for fields in state["grants"]:
                fields = fields | {
                    "expires_at": self._to_monotonic(fields["expires_at"]),
                    "issued_at": self._to_monotonic(fields["issued_at"]),
                    "scopes": tuple(fields["scopes"]),
                }
                grant = Grant(**fields)
                tokens._by_access[grant.access_token] = grant
                if grant.refresh_token:
                    tokens._by_refresh[grant.refresh_token] = grant
        tokens.early_expiry_s = state.get("early_expiry_s")

    def _restore_webhooks(self, state: dict[str, Any]) -> None:
        registry = self.webhooks
        with registry._cond:
            registry._hooks.clear()
            for fields in state["hooks"]:
                hook = Webhook(
                    id=fields["id"],
                    client_id=fields["client_id"],
                    campaign_id=fields["campaign_id"],
                    uri=fields["uri"],
                    triggers=list(fields["triggers"]),
                    secret=fields["secret"],
                    paused=fields["paused"],
                    num_consecutive_times_failed=fields["num_consecutive_times_failed"],
                    last_attempted_at=fields["last_attempted_at"],
                    queue=deque(self._queued(e) for e in fields["queue"]),
                    held=[self._queued(e) for e in fields["held"]],
                    next_attempt_at=self._to_monotonic(fields["next_attempt_at"]),
                )
                registry._hooks[hook.id] = hook
            registry._next_id = state["next_id"]

    def _queued(self, fields: dict[str, Any]) -> QueuedEvent:
        return QueuedEvent(
            trigger=fields["trigger"],
            body=fields["body"].encode("utf-8"),
            not_before=self._to_monotonic(fields["not_before"]),
            fault=fields.get("fault"),
        )
