"""The sandbox's state across its own restart: three JSON files, each written atomically.

Kept: the world (users, members, tiers, posts, ... and the seeded generator's
position, so new ids never repeat), every token (access and refresh, with their
expiry, so the bridge's sessions and its rotated creator pair still work after a
restart), every webhook with its queue, held events and failure count (queued
deliveries survive). Not kept: pending authorization codes (they live 10 minutes),
counters, the delivery log, injected faults, the edge block's counts.

In the state folder: `tokens.json` (small, saved on every grant, refresh, expiry or
revocation, before the answer leaves), `world.json` (saved on every control-API
change; large with many members, rarely written) and `webhooks.json` (saved on
every webhook change and delivery; with the scheduler running, at most every
FLUSH_INTERVAL_S and once more at stop, so a burst of deliveries is one write).
Each file is written to a temporary file in the same folder, fsynced and renamed over
the old one: a crash leaves the old or the new file, never a half-written one.

The files belong to the configuration that made them: if the seed, member count,
client, creator pair or seeded webhook differ (or a file is missing or unreadable),
they are ignored (logged) and the sandbox starts from the seed. Times on the
monotonic clock are stored as wall-clock times.

Each part is copied under its own lock (the world's, the token store's, the webhook
registry's), then written under this module's per-file lock.
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
FILES = ("world", "tokens", "webhooks")
FLUSH_INTERVAL_S = 0.25
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
    """The state folder: reads it at start, writes each part when it changes."""

    def __init__(
        self,
        folder: Path,
        settings: SandboxSettings,
        world: World,
        tokens: TokenStore,
        webhooks: WebhookRegistry,
        clock: Callable[[], float],
        wall_clock: Callable[[], float],
    ):
        self.folder = folder
        self.settings = settings
        self.world = world
        self.tokens = tokens
        self.webhooks = webhooks
        self.clock = clock
        self.wall_clock = wall_clock
        self._locks = {name: threading.Lock() for name in FILES}
        self._webhooks_dirty = threading.Event()
        self._stopping = threading.Event()
        self._flusher: threading.Thread | None = None
        self.saves = dict.fromkeys(FILES, 0)

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    # ------------------------------------------------------------ time

    def _to_wall(self, monotonic: float) -> float:
        return self.wall_clock() + (monotonic - self.clock())

    def _to_monotonic(self, wall: float) -> float:
        return self.clock() + (wall - self.wall_clock())

    # ------------------------------------------------------------ saving

    def attach(self) -> None:
        """Save on every change from now on (and write every part once now)."""
        self.world.on_change = self.save_world
        self.tokens.on_change = self.save_tokens
        self.webhooks.on_change = self.webhooks_changed
        self.save_world()
        self.save_tokens()
        self.save_webhooks()

    def start(self) -> None:
        """Batch webhook saves in a background thread from now on."""
        if self._flusher is None:
            self._flusher = threading.Thread(target=self._flush_loop, name="state-flusher", daemon=True)
            self._flusher.start()

    def stop(self) -> None:
        """Write what is still pending (the entry point calls it at shutdown)."""
        self._stopping.set()
        if self._flusher is not None:
            self._flusher.join(5)
        self.save_webhooks()

    def webhooks_changed(self) -> None:
        if self._flusher is None:
            self.save_webhooks()
        else:
            self._webhooks_dirty.set()

    def _flush_loop(self) -> None:
        while not self._stopping.is_set():
            if self._webhooks_dirty.wait(0.5):
                self._webhooks_dirty.clear()
                try:
                    self.save_webhooks()
                except Exception:  # never let the flusher die; the next change retries
                    log.exception("saving the webhooks' state failed")
                    self._webhooks_dirty.set()
                self._stopping.wait(FLUSH_INTERVAL_S)

    def save_world(self) -> None:
        with self.world.lock:
            state = self._world_state()
        self._write("world", state)

    def save_tokens(self) -> None:
        self._write("tokens", self._token_state())

    def save_webhooks(self) -> None:
        self._write("webhooks", self._webhook_state())

    def _write(self, name: str, state: dict[str, Any]) -> None:
        document = {"format": FORMAT, "fingerprint": fingerprint(self.settings), name: state}
        text = json.dumps(document, separators=(",", ":"))
        path = self.path(name)
        with self._locks[name]:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except FileNotFoundError:
                    pass
                raise
            self.saves[name] += 1

    def _world_state(self) -> dict[str, Any]:
        world = self.world
        state: dict[str, Any] = {}
        for name, cls in TABLES.items():
            names = [f.name for f in dataclasses.fields(cls)]
            state[name] = [{n: getattr(obj, n) for n in names} for obj in getattr(world, name).values()]
        state["counters"] = {name: getattr(world, name) for name in WORLD_COUNTERS}
        state["rng"] = world.rng.getstate()
        return state

    def _token_state(self) -> dict[str, Any]:
        tokens = self.tokens
        with tokens._lock:
            grants = [dataclasses.replace(grant) for grant in tokens._by_access.values()]
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
        """The saved parts if all are there for these settings, else None (logged)."""
        parts: dict[str, Any] = {}
        for name in FILES:
            path = self.path(name)
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                if parts:
                    log.warning("sandbox state %s is missing: starting from the seed", path)
                return None
            except (OSError, ValueError) as ex:
                log.warning(
                    "sandbox state %s unreadable (%s): starting from the seed", path, type(ex).__name__
                )
                return None
            if not isinstance(document, dict) or document.get("format") != FORMAT or name not in document:
                log.warning("sandbox state %s has an unknown format: starting from the seed", path)
                return None
            if document.get("fingerprint") != fingerprint(self.settings):
                log.warning(
                    "sandbox state in %s was made with other settings: starting from the seed", self.folder
                )
                return None
            parts[name] = document[name]
        return parts

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
