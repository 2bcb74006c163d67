"""Sandbox configuration: one frozen dataclass, built once from the environment.

Only the entry point (`sandbox.__main__`) calls `SandboxSettings.from_env`; every
other module receives the settings object. Invalid values raise `SettingsError`
carrying one human-readable line per bad variable.

The entry point reads its values with `settings.environment.read_environment` (the
environment over the project's `.env`) and decides live mode with its `live_mode`,
exactly as web, worker and watchdog do, so `SANDBOX_*` values and Patreon credentials
kept in `.env` mean the same thing to every process of the stack.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# One source and one live-mode rule for every process (settings.environment): the
# sandbox re-exports them for its entry point and tests. EXIT_CONFIG is sysexits.h's
# EX_CONFIG; PROJECT_DIR is the working directory (supervisord.conf's `directory=`),
# where `.env` is found and where DATA_DIR defaults to var/.
from settings.environment import EXIT_CONFIG as EXIT_CONFIG
from settings.environment import LIVE_CREDENTIALS as LIVE_CREDENTIALS
from settings.environment import PROJECT_DIR as PROJECT_DIR
from settings.environment import live_mode as live_mode
from settings.environment import read_environment as read_environment
from settings.reader import Reader

STATE_DIR_NAME = "sandbox-state"

HOUR = 3600.0
DAY = 24 * HOUR
WEEK = 7 * DAY
# Patreon's webhook retries (docs.patreon.com, "Robust Retries", as PATREON.md quotes
# it): about 1 h, 3 h, 1 d, 3 d, then weekly, then only a manual retry. How many weekly
# retries come before the pause is not said: the sandbox makes four (about a month).
PATREON_RETRY_SCHEDULE_S = (HOUR, 3 * HOUR, DAY, 3 * DAY, WEEK, WEEK, WEEK, WEEK)
# The legacy fixed-interval retry (SANDBOX_WEBHOOK_RETRY_S) pauses after this many.
LEGACY_PAUSE_AFTER = 3

WEB_DEFAULT_HOST = "127.0.0.1"
WEB_DEFAULT_PORT = "6969"
CALLBACK_PATH = "/auth/patreon/callback"


class SettingsError(Exception):
    """Raised with one line per invalid environment variable."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class SandboxSettings:
    host: str = "127.0.0.1"
    port: int = 6970
    threads: int = 48
    seed: int = 1
    members: int = 120
    client_id: str = "sandbox-client-id"
    client_secret: str = "sandbox-client-secret"
    redirect_uris: tuple[str, ...] = (
        f"http://{WEB_DEFAULT_HOST}:{WEB_DEFAULT_PORT}{CALLBACK_PATH}",
        f"http://localhost:{WEB_DEFAULT_PORT}{CALLBACK_PATH}",
    )
    creator_access_token: str = "sandbox-creator-access-token"
    creator_refresh_token: str = "sandbox-creator-refresh-token"
    rate_limit_per_2_seconds: int = 100
    rate_limit_per_minute: int = 100
    token_ttl_s: int = 2678400
    code_ttl_s: int = 600
    webhook_timeout_s: float = 10.0
    # None: Patreon's schedule (scaled by time_scale). A number: retry every that many
    # real seconds (pausing after webhook_pause_after, default 3), for fast tests.
    webhook_retry_s: float | None = None
    webhook_pause_after: int | None = None
    webhook_retry_schedule_s: tuple[float, ...] = PATREON_RETRY_SCHEDULE_S
    webhook_uri: str | None = None
    webhook_secret: str = "sandbox-webhook-secret"
    # Patreon-time seconds per real second: 3600 makes Patreon's 1 h retry take 1 s.
    # Scales the retry schedule and the edge block's window and length (control-API
    # values, e.g. /_sandbox/tokens/early-expiry, are real seconds).
    time_scale: float = 1.0
    # Patreon's edge (Cloudflare) blocks a client that makes about 2,000 4xx in 600 s.
    edge_block_4xx: int = 2000
    edge_block_window_s: float = 600.0
    edge_block_s: float = 600.0
    # The folder where the sandbox keeps its state across restarts; None: memory only.
    state_dir: Path | None = None

    def real_seconds(self, patreon_seconds: float) -> float:
        """A Patreon duration in real seconds, after the time scale."""
        return patreon_seconds / self.time_scale

    def retry_delay_s(self, failures: int) -> float:
        """Real seconds to wait after the `failures`-th consecutive failure."""
        if self.webhook_retry_s is not None:
            return self.webhook_retry_s
        schedule = self.webhook_retry_schedule_s
        return self.real_seconds(schedule[min(failures, len(schedule)) - 1])

    @property
    def pause_after(self) -> int:
        """Consecutive failures after which a webhook is paused (manual retry only)."""
        if self.webhook_pause_after is not None:
            return self.webhook_pause_after
        if self.webhook_retry_s is not None:
            return LEGACY_PAUSE_AFTER
        return len(self.webhook_retry_schedule_s) + 1

    @property
    def base_url(self) -> str:
        """The sandbox's own address, used in webhook payload links."""
        return f"http://{self.host}:{self.port}"

    def replace(self, **changes: Any) -> SandboxSettings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SandboxSettings:
        reader = _Reader(environ)
        defaults = cls()
        values = {
            "host": reader.text("SANDBOX_HOST", defaults.host),
            "port": reader.integer("SANDBOX_PORT", defaults.port, 1, 65535),
            "threads": reader.integer("SANDBOX_THREADS", defaults.threads, 1, 1024),
            "seed": reader.integer("SANDBOX_SEED", defaults.seed),
            "members": reader.integer("SANDBOX_MEMBERS", defaults.members, 0, 1_000_000),
            "client_id": reader.text("SANDBOX_CLIENT_ID", defaults.client_id),
            "client_secret": reader.text("SANDBOX_CLIENT_SECRET", defaults.client_secret),
            "redirect_uris": reader.parsed(
                "SANDBOX_REDIRECT_URIS", _parse_uri_list, _default_redirect_uris(reader)
            ),
            "creator_access_token": reader.text(
                "SANDBOX_CREATOR_ACCESS_TOKEN", defaults.creator_access_token
            ),
            "creator_refresh_token": reader.text(
                "SANDBOX_CREATOR_REFRESH_TOKEN", defaults.creator_refresh_token
            ),
            "rate_limit_per_2_seconds": reader.integer(
                "SANDBOX_RATE_LIMIT_PER_2_SECONDS", defaults.rate_limit_per_2_seconds, 1
            ),
            "rate_limit_per_minute": reader.integer(
                "SANDBOX_RATE_LIMIT_PER_MINUTE", defaults.rate_limit_per_minute, 1
            ),
            "token_ttl_s": reader.integer("SANDBOX_TOKEN_TTL_S", defaults.token_ttl_s, 1),
            "code_ttl_s": reader.integer("SANDBOX_CODE_TTL_S", defaults.code_ttl_s, 1),
            "webhook_timeout_s": reader.seconds(
                "SANDBOX_WEBHOOK_TIMEOUT_S", defaults.webhook_timeout_s, positive=True
            ),
            "webhook_retry_s": reader.seconds("SANDBOX_WEBHOOK_RETRY_S", None),
            "webhook_pause_after": reader.integer("SANDBOX_WEBHOOK_PAUSE_AFTER", None, 1),
            "webhook_retry_schedule_s": reader.parsed(
                "SANDBOX_WEBHOOK_RETRY_SCHEDULE_S", _parse_seconds_list, defaults.webhook_retry_schedule_s
            ),
            "webhook_uri": reader.parsed("SANDBOX_WEBHOOK_URI", _parse_uri, None),
            "webhook_secret": reader.text("SANDBOX_WEBHOOK_SECRET", defaults.webhook_secret),
            "time_scale": reader.seconds("SANDBOX_TIME_SCALE", defaults.time_scale, positive=True),
            "edge_block_4xx": reader.integer("SANDBOX_EDGE_BLOCK_4XX", defaults.edge_block_4xx, 1),
            "edge_block_window_s": reader.seconds(
                "SANDBOX_EDGE_BLOCK_WINDOW_S", defaults.edge_block_window_s, positive=True
            ),
            "edge_block_s": reader.seconds("SANDBOX_EDGE_BLOCK_S", defaults.edge_block_s, positive=True),
            "state_dir": _state_dir(reader),
        }
        if reader.problems:
            raise SettingsError([f"{name}: {problem}" for name, problem in reader.problems])
        return cls(**values)


class _Reader(Reader):
    """The shared reader (settings.reader), with the sandbox's own phrasing of problems."""

    def integer(self, name: str, default: int, minimum: int | None = None, maximum: int | None = None) -> int:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problem(name, f"expected an integer, got {raw!r}")
            return default
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = f"{minimum if minimum is not None else '-inf'}..{maximum or 'inf'}"
            self.problem(name, f"{value} is out of range {bounds}")
            return default
        return value

    def seconds(self, name: str, default: float, positive: bool = False) -> float:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problem(name, f"expected a number of seconds, got {raw!r}")
            return default
        if value < 0 or (positive and value == 0) or value != value:
            self.problem(name, f"{raw!r} must be {'> 0' if positive else '>= 0'}")
            return default
        return value


def _parse_uri(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{raw!r} is not an absolute http(s) URL")
    return raw


def _parse_seconds_list(raw: str) -> tuple[float, ...]:
    try:
        values = tuple(float(item) for item in raw.split(",") if item.strip())
    except ValueError:
        raise ValueError(f"{raw!r} is not a comma-separated list of seconds") from None
    if not values or any(not math.isfinite(v) or v < 0 for v in values):
        raise ValueError(f"{raw!r} must list at least one number of seconds >= 0")
    return values


def _state_dir(reader: _Reader) -> Path | None:
    """SANDBOX_STATE_DIR, else DATA_DIR/sandbox-state (DATA_DIR defaults to var/ in the
    working directory, as for the worker); SANDBOX_STATE_DIR=off keeps state in
    memory only."""
    raw = reader.raw("SANDBOX_STATE_DIR")
    if raw is not None:
        return None if raw.lower() in ("off", "none", "memory") else Path(raw).resolve()
    data_dir = Path(reader.text("DATA_DIR", str(PROJECT_DIR / "var"))).resolve()
    return data_dir / STATE_DIR_NAME


def _parse_uri_list(raw: str) -> tuple[str, ...]:
    uris = tuple(_parse_uri(item.strip()) for item in raw.split(",") if item.strip())
    if not uris:
        raise ValueError("expected a comma-separated list of URLs")
    return uris


def _default_redirect_uris(reader: _Reader) -> tuple[str, ...] | None:
    """The web app's callback: `PATREON_REDIRECT_URI` if set (the worker sends it), and
    the callback on the web app's HOST/PORT, so supervisord's shared env just works."""
    if reader.raw("SANDBOX_REDIRECT_URIS") is not None:
        return None  # not used; avoid judging the web app's variables for nothing
    host = reader.text("HOST", WEB_DEFAULT_HOST)
    port = reader.integer("PORT", int(WEB_DEFAULT_PORT), 1, 65535)
    uris = [
        reader.parsed("PATREON_REDIRECT_URI", _parse_uri, None),
        f"http://{host}:{port}{CALLBACK_PATH}",
        f"http://localhost:{port}{CALLBACK_PATH}",
    ]
    return tuple(dict.fromkeys(uri for uri in uris if uri))
