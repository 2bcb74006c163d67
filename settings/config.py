"""The one place configuration is validated: environment first, then ``.env``, then
defaults (``settings.environment`` reads them and holds the live-mode rule).

Each process (web, worker, watchdog) builds a ``Config`` once in its entry point
with ``load_config(process=...)`` and passes it down; a bad variable that only
another process reads does not stop it. Business code never reads ``os.environ``.

With no Patreon credentials at all the stack runs in *sandbox mode*: the worker talks
to the bundled sandbox (``python -m sandbox``) with the sandbox's own client and
creator token. Half-set credentials are an error, never a silent fallback.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import ipaddress
from collections.abc import Mapping
from pathlib import Path

from settings.environment import EXIT_CONFIG as EXIT_CONFIG  # re-exported for the entry points
from settings.environment import PROJECT_DIR, live_mode, read_environment

V2_SCOPES = (
    "identity",
    "identity[email]",
    "identity.memberships",
    "campaigns",
    "w:campaigns.webhook",
    "campaigns.members",
    "campaigns.members[email]",
    "campaigns.members.address",
    "campaigns.posts",
)

# A plain login (GET /auth/patreon): the user, their memberships, and ``campaigns`` so
# a creator's session knows its campaign and may subscribe to its live events.
DEFAULT_SCOPES = ("identity", "identity[email]", "identity.memberships", "campaigns")

# In live mode (settings.environment.live_mode) these must all be set.
_LIVE_REQUIRED = ("PATREON_CLIENT_ID", "PATREON_CLIENT_SECRET", "PATREON_REDIRECT_URI")

# The sandbox's own defaults (sandbox/settings.py reads the same SANDBOX_* variables).
SANDBOX_DEFAULTS = {
    "SANDBOX_HOST": "127.0.0.1",
    "SANDBOX_PORT": "6970",
    "SANDBOX_CLIENT_ID": "sandbox-client-id",
    "SANDBOX_CLIENT_SECRET": "sandbox-client-secret",
    "SANDBOX_CREATOR_ACCESS_TOKEN": "sandbox-creator-access-token",
    "SANDBOX_CREATOR_REFRESH_TOKEN": "sandbox-creator-refresh-token",
    "SANDBOX_WEBHOOK_SECRET": "sandbox-webhook-secret",
}


# Which process a variable matters to. A bad worker-only setting (a rate limit, say)
# stops the worker, while web keeps answering 503 with its code instead of dying too.
WORKER_ONLY = frozenset(
    {
        "PATREON_RATE_LIMIT_REQUESTS_PER_MINUTE",
        "PATREON_RATE_LIMIT_REQUESTS_PER_2_SECONDS",
        "PATREON_CREATOR_ACCESS_TOKEN",
        "PATREON_CREATOR_REFRESH_TOKEN",
        "PATREON_API_BASE",
        "WORKER_THREADS",
    }
)
WEB_ONLY = frozenset(
    {"HOST", "PORT", "WEB_THREADS", "MAX_STREAMS", "TRUSTED_PROXY", "SESSION_COOKIE_SECURE", "POST_LOGIN_URL"}
    | {"SOCKETIO_CORS_ORIGINS", "DEMO_PAGE", "ALLOWED_ORIGINS", "LOGIN_RATE_LIMIT_PER_MINUTE"}
)
# The watchdog's own variables: a bad one stops only the watchdog (supervisord shows
# it FATAL), never web or worker; the watchdog in turn ignores web's and worker's.
# Accepted and ignored, so that existing .env files keep working. SESSION_SECRET was
# reserved for signing sessions; sessions are random ids kept server-side instead.
DEPRECATED = ("SESSION_SECRET",)
WATCHDOG_ONLY = frozenset(
    {"WATCHDOG_MAX_MISSES", "WATCHDOG_PING_TIMEOUT_S", "WATCHDOG_CRASH_LIMIT", "WATCHDOG_CRASH_WINDOW_S"}
)


def _is_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False


class ConfigError(Exception):
    """Invalid or half-set configuration: one ``(variable, problem)`` per bad variable."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{name}: {problem}" for name, problem in problems))

    def lines(self) -> list[str]:
        return [f"❌ Configuration error: {name} {problem}" for name, problem in self.problems]


@dataclasses.dataclass(frozen=True)
class Config:
    mode: str  # "sandbox" | "live"
    host: str
    port: int
    data_dir: Path
    worker_endpoint: str
    patreon_api_base: str
    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    redirect_uri: str
    creator_access_token: str | None = dataclasses.field(repr=False)
    creator_refresh_token: str | None = dataclasses.field(repr=False)
    webhook_secrets: tuple[str, ...] = dataclasses.field(repr=False)
    rate_limit_per_minute: int
    rate_limit_per_2_seconds: int
    app_name: str
    user_agent: str
    # Server keys for the site's backend: the first is current, the rest still accepted
    # while a rotation is under way. Empty: server-to-server mode is off.
    bridge_api_keys: tuple[str, ...] = dataclasses.field(repr=False)
    default_scopes: tuple[str, ...]
    post_login_url: str
    # The demo page at /demo (web.demo): on by default in sandbox mode only.
    demo_page: bool
    cookie_secure: bool
    web_threads: int
    max_streams: int
    worker_threads: int
    trusted_proxy: str | None
    test_actions: bool
    # Origins allowed to use Socket.IO cross-site; empty = same origin only.
    socketio_cors_origins: tuple[str, ...]
    # Origins whose pages may make cookie-authenticated POSTs (web.policy), besides
    # the request's own origin and PATREON_REDIRECT_URI's.
    allowed_origins: tuple[str, ...]
    # Fernet keys sealing tokens and webhook secrets in the store (store/encryption.py):
    # the first encrypts, all decrypt. Empty: sandbox mode generates one under DATA_DIR;
    # live mode refuses to start (web and worker).
    encryption_keys: tuple[str, ...] = dataclasses.field(repr=False)
    # Login starts (auth/url, /auth/patreon) each client may make per minute.
    login_rate_per_minute: int
    watchdog_max_misses: int
    watchdog_ping_timeout_s: float
    watchdog_crash_limit: int
    watchdog_crash_window_s: float

    @property
    def store_path(self) -> Path:
        return self.data_dir / "bridge.sqlite3"


def load_config(
    environ: Mapping[str, str] | None = None,
    dotenv_path: Path | None = None,
    *,
    process: str | None = None,
) -> Config:
    """Build the configuration, or raise ``ConfigError`` naming every bad variable.

    ``process`` ("web" or "worker") ignores problems with the other process's own
    variables; ``None`` checks everything.
    """
    return _Reader(read_environment(environ, dotenv_path), process).build()


class _Reader:
    def __init__(self, values: Mapping[str, str], process: str | None):
        self.values = values
        self.problems: list[tuple[str, str]] = []
        self.ignored = {
            "web": WORKER_ONLY | WATCHDOG_ONLY,
            "worker": WEB_ONLY | WATCHDOG_ONLY,
            "watchdog": WEB_ONLY | WORKER_ONLY,
        }.get(process or "", frozenset())

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.values.get(name, "").strip()
        return value or default

    def integer(self, name: str, default: int, minimum: int = 1, maximum: int = 10**9) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problems.append((name, f"must be a whole number, got {raw!r}"))
            return default
        if not minimum <= value <= maximum:
            self.problems.append((name, f"must be between {minimum} and {maximum}, got {value}"))
            return default
        return value

    def seconds(self, name: str, default: float, minimum: float, maximum: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problems.append((name, f"must be a number of seconds, got {raw!r}"))
            return default
        if not minimum <= value <= maximum:  # also rejects nan
            self.problems.append((name, f"must be between {minimum:g} and {maximum:g}, got {raw}"))
            return default
        return value

    def origins(self, name: str) -> tuple[str, ...]:
        """A comma list of web origins (scheme://host[:port]), or ``*`` for any."""
        items = tuple(item.strip().rstrip("/") for item in (self.text(name) or "").split(",") if item.strip())
        bad = [o for o in items if o != "*" and (not o.startswith(("http://", "https://")) or "/" in o[8:])]
        if bad:
            self.problems.append((name, f"must be origins like https://example.com or *, got {bad}"))
            return ()
        return items

    def fernet_keys(self, name: str) -> tuple[str, ...]:
        """A comma list of Fernet keys (urlsafe base64 of 32 bytes); never echoed back."""
        keys = tuple(k.strip() for k in (self.text(name) or "").split(",") if k.strip())
        bad = [i + 1 for i, key in enumerate(keys) if not _is_fernet_key(key)]
        if bad:
            self.problems.append(
                (
                    name,
                    f"key {', '.join(map(str, bad))} is not a Fernet key (python -m store.rekey --new-key)",
                )
            )
            return ()
        return keys

    def exact_origins(self, name: str) -> tuple[str, ...]:
        """Like ``origins``, without ``*``: every origin named."""
        items = self.origins(name)
        if "*" in items:
            self.problems.append((name, "must name each origin; * is not allowed here"))
            return ()
        return items

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        self.problems.append((name, f"must be true or false, got {raw!r}"))
        return default

    def url(self, name: str, default: str | None = None) -> str | None:
        value = self.text(name, default)
        if value is not None and not value.startswith(("http://", "https://")):
            self.problems.append((name, f"must be an http(s) URL, got {value!r}"))
        return value

    def build(self) -> Config:
        host = self.text("HOST", "127.0.0.1")
        port = self.integer("PORT", 6969, 1, 65535)
        data_dir = Path(self.text("DATA_DIR", str(PROJECT_DIR / "var"))).resolve()
        endpoint = self.text("PATREON_WORKER_ENDPOINT", f"ipc://{data_dir / 'worker.sock'}")
        if not endpoint.startswith(("ipc://", "tcp://")):
            self.problems.append(
                ("PATREON_WORKER_ENDPOINT", f"must be ipc://PATH or tcp://HOST:PORT, got {endpoint!r}")
            )
        elif endpoint.startswith("ipc://") and len(endpoint) > 100:
            # libzmq limits ipc paths to the size of sockaddr_un.sun_path.
            self.problems.append(("PATREON_WORKER_ENDPOINT", "ipc path is too long (over 100 chars)"))

        live = live_mode(self.values)
        default_redirect = f"http://{host}:{port}/auth/patreon/callback"
        if live:
            mode = "live"
            for name in _LIVE_REQUIRED:
                if not self.text(name):
                    self.problems.append((name, "is required once Patreon credentials are set"))
            access, refresh = (
                self.text("PATREON_CREATOR_ACCESS_TOKEN"),
                self.text("PATREON_CREATOR_REFRESH_TOKEN"),
            )
            if bool(access) != bool(refresh):
                missing = "PATREON_CREATOR_REFRESH_TOKEN" if access else "PATREON_CREATOR_ACCESS_TOKEN"
                self.problems.append((missing, "must be set together with its pair"))
            api_base = self.url("PATREON_API_BASE", "https://www.patreon.com")
            client_id = self.text("PATREON_CLIENT_ID", "")
            client_secret = self.text("PATREON_CLIENT_SECRET", "")
            redirect_uri = self.url("PATREON_REDIRECT_URI", default_redirect)
            webhook_secret = self.text("PATREON_WEBHOOK_SECRET")
        else:
            mode = "sandbox"
            sandbox = {k: self.text(k, v) for k, v in SANDBOX_DEFAULTS.items()}
            self.integer("SANDBOX_PORT", 6970, 1, 65535)
            api_base = f"http://{sandbox['SANDBOX_HOST']}:{sandbox['SANDBOX_PORT']}"
            client_id = sandbox["SANDBOX_CLIENT_ID"]
            client_secret = sandbox["SANDBOX_CLIENT_SECRET"]
            access = sandbox["SANDBOX_CREATOR_ACCESS_TOKEN"]
            refresh = sandbox["SANDBOX_CREATOR_REFRESH_TOKEN"]
            redirect_uri = self.url("PATREON_REDIRECT_URI", default_redirect)
            webhook_secret = self.text("PATREON_WEBHOOK_SECRET", sandbox["SANDBOX_WEBHOOK_SECRET"])

        scopes = tuple(
            s
            for s in (self.text("PATREON_DEFAULT_SCOPES", " ".join(DEFAULT_SCOPES)) or "")
            .replace(",", " ")
            .split()
            if s
        )
        unknown = [s for s in scopes if s not in V2_SCOPES]
        if unknown:
            self.problems.append(("PATREON_DEFAULT_SCOPES", f"has unknown scopes {unknown}"))

        trusted_proxy = self.text("TRUSTED_PROXY")
        if trusted_proxy:
            try:
                ipaddress.ip_address(trusted_proxy)
            except ValueError:
                self.problems.append(("TRUSTED_PROXY", f"must be an IP address, got {trusted_proxy!r}"))

        web_threads = self.integer("WEB_THREADS", 32, 4, 1024)
        demo_page = self.boolean("DEMO_PAGE", mode == "sandbox")
        config = Config(
            mode=mode,
            host=host,
            port=port,
            data_dir=data_dir,
            worker_endpoint=endpoint,
            patreon_api_base=(api_base or "").rstrip("/"),
            client_id=client_id,
            client_secret=client_secret,
            redirect_uri=redirect_uri,
            creator_access_token=access,
            creator_refresh_token=refresh,
            webhook_secrets=tuple(s.strip() for s in (webhook_secret or "").split(",") if s.strip()),
            rate_limit_per_minute=self.integer("PATREON_RATE_LIMIT_REQUESTS_PER_MINUTE", 90),
            rate_limit_per_2_seconds=self.integer("PATREON_RATE_LIMIT_REQUESTS_PER_2_SECONDS", 95),
            app_name=self.text("PATREON_APP_NAME", "Patreon Bridge"),
            user_agent=self.text(
                "PATREON_USER_AGENT", f"{self.text('PATREON_APP_NAME', 'Patreon Bridge')} (python-requests)"
            ),
            bridge_api_keys=tuple(
                k.strip() for k in (self.text("BRIDGE_API_KEY") or "").split(",") if k.strip()
            ),
            default_scopes=scopes,
            # After login, the demo page when it is served; the site's root otherwise.
            post_login_url=self.text("POST_LOGIN_URL", "/demo" if demo_page else "/"),
            demo_page=demo_page,
            cookie_secure=self.boolean("SESSION_COOKIE_SECURE", False),
            web_threads=web_threads,
            max_streams=self.integer("MAX_STREAMS", max(1, web_threads // 2), 1, 1024),
            worker_threads=self.integer("WORKER_THREADS", 32, 1, 1024),
            trusted_proxy=trusted_proxy,
            test_actions=self.boolean("BRIDGE_TEST_ACTIONS", False),
            socketio_cors_origins=self.origins("SOCKETIO_CORS_ORIGINS"),
            allowed_origins=self.exact_origins("ALLOWED_ORIGINS"),
            encryption_keys=self.fernet_keys("BRIDGE_ENCRYPTION_KEY"),
            login_rate_per_minute=self.integer("LOGIN_RATE_LIMIT_PER_MINUTE", 30, 1, 100_000),
            # Defaults: a hang is found within one TICK_5 plus 2 x 2 s of silence (~9 s at
            # worst); 5 unexpected exits within 60 s after start stop the worker.
            watchdog_max_misses=self.integer("WATCHDOG_MAX_MISSES", 2, 1, 100),
            watchdog_ping_timeout_s=self.seconds("WATCHDOG_PING_TIMEOUT_S", 2.0, 0.1, 60.0),
            watchdog_crash_limit=self.integer("WATCHDOG_CRASH_LIMIT", 5, 1, 1000),
            watchdog_crash_window_s=self.seconds("WATCHDOG_CRASH_WINDOW_S", 60.0, 1.0, 86400.0),
        )
        if config.max_streams >= config.web_threads:
            self.problems.append(
                ("MAX_STREAMS", "must be below WEB_THREADS so streams cannot take every thread")
            )
        problems = [(name, problem) for name, problem in self.problems if name not in self.ignored]
        if problems:
            raise ConfigError(problems)
        return config
