"""The one place configuration is validated: environment first, then ``.env``, then
defaults (``settings.environment`` reads them and holds the live-mode rule;
``settings.reader`` is the typed reader every process shares).

Settings per process, each read and validated once in its entry point with
``load_settings(process)``:

    CommonSettings        mode, data_dir, worker_endpoint, test_actions (every process)
    +-- PatreonAppSettings  patreon_api_base, client_id, redirect_uri
    |   +-- WebSettings       HTTP, sessions, server keys, webhook secrets, streams
    |   +-- WorkerSettings    client secret, creator tokens, rate limits, threads
    +-- WatchdogSettings   hang and crash-loop limits
    Config                every field at once (tests, bench, ``load_config``)

A process gets only its own fields (web never holds the client secret or the
creator tokens), and a bad variable that only another process reads does not stop
it (``WEB_ONLY``, ``WORKER_ONLY``, ``WATCHDOG_ONLY``). The sandbox has its own
``SandboxSettings`` (``sandbox/settings.py``) over the same reader and live-mode rule.
Business code never reads ``os.environ``.

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

from sandbox.settings import SandboxSettings
from settings.environment import EXIT_CONFIG as EXIT_CONFIG  # re-exported for the entry points
from settings.environment import PROJECT_DIR, live_mode, read_environment
from settings.reader import Reader

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

# The SANDBOX_* variables the bridge reads in sandbox mode, with the sandbox's own
# defaults (sandbox/settings.py owns them; both sides must agree).
_SANDBOX = SandboxSettings()
SANDBOX_DEFAULTS = {
    "SANDBOX_HOST": _SANDBOX.host,
    "SANDBOX_PORT": str(_SANDBOX.port),
    "SANDBOX_CLIENT_ID": _SANDBOX.client_id,
    "SANDBOX_CLIENT_SECRET": _SANDBOX.client_secret,
    "SANDBOX_CREATOR_ACCESS_TOKEN": _SANDBOX.creator_access_token,
    "SANDBOX_CREATOR_REFRESH_TOKEN": _SANDBOX.creator_refresh_token,
    "SANDBOX_WEBHOOK_SECRET": _SANDBOX.webhook_secret,
}


# Which process a variable matters to. A bad worker-only setting (a rate limit, say)
# stops the worker, while web keeps answering 503 with its code instead of dying too.
WORKER_ONLY = frozenset(
    {
        "PATREON_RATE_LIMIT_REQUESTS_PER_MINUTE",
        "PATREON_RATE_LIMIT_REQUESTS_PER_2_SECONDS",
        "PATREON_RATE_LIMIT_SHARED",
        "PATREON_CREATOR_ACCESS_TOKEN",
        "PATREON_CREATOR_REFRESH_TOKEN",
        "PATREON_API_BASE",
        "WORKER_THREADS",
        "WORKER_PROCESS_NUM",
        "WORKER_NUMPROCS",
        "PATREON_EDGE_BLOCK_PAUSE_S",
        "BRIDGE_MEMBER_SYNC_INTERVAL_S",
        "BRIDGE_MEMBER_PII",
    }
)
WEB_ONLY = frozenset(
    {"HOST", "PORT", "WEB_PROCESS_NUM", "WEB_THREADS", "TRUSTED_PROXY", "SESSION_COOKIE_SECURE", "POST_LOGIN_URL"}
    | {"DEMO_PAGE", "ALLOWED_ORIGINS", "LOGIN_RATE_LIMIT_PER_MINUTE"}
    | {"WEB_DATABASE_POOL_TIMEOUT_S", "WEB_DATABASE_STATEMENT_TIMEOUT_S"}
)
# The watchdog's own variables: a bad one stops only the watchdog (supervisord shows
# it FATAL), never web or worker; the watchdog in turn ignores web's and worker's.
# Accepted and ignored, so that existing .env files keep working. SESSION_SECRET was
# reserved for signing sessions; sessions are random ids kept server-side instead.
DEPRECATED = ("SESSION_SECRET",)
WATCHDOG_ONLY = frozenset(
    {"WATCHDOG_MAX_MISSES", "WATCHDOG_PING_TIMEOUT_S", "WATCHDOG_CRASH_LIMIT", "WATCHDOG_CRASH_WINDOW_S"}
    | {"WATCHDOG_INTERVAL_S"}
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


_settings = dataclasses.dataclass(frozen=True, kw_only=True)


@_settings
class CommonSettings:
    """What every bridge process knows: the mode, where state lives, the worker's address."""

    mode: str  # "sandbox" | "live"
    data_dir: Path
    worker_endpoint: str  # the first of worker_endpoints (one worker: the only one)
    test_actions: bool
    # The store (store/database.py): sqlite:///PATH (one host) or postgresql://... ;
    # never logged whole (it may hold a password). Connections per process (PostgreSQL).
    database_url: str = dataclasses.field(default="", repr=False)
    database_pool_size: int = 10
    # Every worker web spreads calls over (PATREON_WORKER_ENDPOINTS, or derived from
    # WORKER_PROCESSES); empty means just worker_endpoint.
    worker_endpoints: tuple[str, ...] = ()
    # ZeroMQ CURVE for tcp:// endpoints (wire/curve.py): the folder holding the key
    # pairs and the allow-list; None = no CURVE (the ipc:// single-host default).
    worker_curve_dir: Path | None = None
    # How long a declined patron keeps access after the last charge date: web answers
    # access checks with it and the worker decides entitlement:changed with it.
    entitlement_grace_s: float = 0.0

    @property
    def store_path(self) -> Path:
        """The SQLite file of a SQLite store (its default place otherwise)."""
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///"))
        return self.data_dir / "bridge.sqlite3"

    @property
    def endpoints(self) -> tuple[str, ...]:
        """Every worker's endpoint, in process_num order."""
        return self.worker_endpoints or (self.worker_endpoint,)


@_settings
class PatreonAppSettings(CommonSettings):
    """What web and worker both need: the Patreon OAuth client (authorize URLs, token
    calls) and the keys that seal tokens and webhook secrets in the store."""

    # Fernet keys sealing tokens and webhook secrets in the store (store/encryption.py):
    # the first encrypts, all decrypt. Empty: sandbox mode generates one under DATA_DIR;
    # live mode refuses to start (web and worker).
    encryption_keys: tuple[str, ...] = dataclasses.field(repr=False)

    patreon_api_base: str
    client_id: str
    redirect_uri: str


@_settings
class WebSettings(PatreonAppSettings):
    host: str
    port: int
    webhook_secrets: tuple[str, ...] = dataclasses.field(repr=False)
    # Server keys for the site's backend: the first is current, the rest still accepted
    # while a rotation is under way. Empty: server-to-server mode is off.
    bridge_api_keys: tuple[str, ...] = dataclasses.field(repr=False)
    default_scopes: tuple[str, ...]
    post_login_url: str
    # The demo page at /demo (web.demo): on by default in sandbox mode only.
    demo_page: bool
    cookie_secure: bool
    web_threads: int
    trusted_proxy: str | None
    # Origins whose pages may make cookie-authenticated POSTs (web.policy), besides
    # the request's own origin and PATREON_REDIRECT_URI's.
    allowed_origins: tuple[str, ...]
    # Login starts (auth/url, /auth/patreon) each client may make per minute.
    login_rate_per_minute: int
    # PostgreSQL: how long a request waits for a pooled connection and lets a statement
    # run before it answers 503 STORE_UNAVAILABLE (small: web must answer fast).
    web_database_pool_timeout_s: float = 0.25
    web_database_statement_timeout_s: float = 2.0


@_settings
class WorkerSettings(PatreonAppSettings):
    client_secret: str = dataclasses.field(repr=False)
    creator_access_token: str | None = dataclasses.field(repr=False)
    creator_refresh_token: str | None = dataclasses.field(repr=False)
    rate_limit_per_minute: int
    rate_limit_per_2_seconds: int
    # How long the worker stops calling after Patreon's edge blocks it (patreon_client.edge).
    patreon_edge_pause_s: float
    app_name: str
    user_agent: str
    worker_threads: int
    # Which of ``endpoints`` this worker binds: supervisord's %(process_num)s
    # (WORKER_PROCESS_NUM, set in supervisord.conf), 0 for a single worker.
    worker_process_num: int = 0
    # Patreon's budget in the store (worker.shared_ratelimit), shared by every worker
    # on it: on by default when several workers are configured.
    rate_limit_shared: bool = False
    # Full member sync every this many seconds (0 = only at start on an empty table and
    # on request); whether member rows keep email and name.
    member_sync_interval_s: float = 21600.0
    member_pii: bool = False


@_settings
class WatchdogSettings(CommonSettings):
    watchdog_max_misses: int
    watchdog_ping_timeout_s: float
    watchdog_interval_s: float
    watchdog_crash_limit: int
    watchdog_crash_window_s: float


@_settings
class Config(WebSettings, WorkerSettings, WatchdogSettings):
    """Every process's settings at once: what tests, bench and ``load_config`` use."""


PROCESS_SETTINGS: dict[str, type[CommonSettings]] = {
    "web": WebSettings,
    "worker": WorkerSettings,
    "watchdog": WatchdogSettings,
}


def load_settings(process: str, environ: Mapping[str, str] | None = None, dotenv_path: Path | None = None):
    """One process's settings (``WebSettings``, ``WorkerSettings``, ``WatchdogSettings``),
    read and validated once in its entry point; only that process's variables (and the
    shared ones) can stop it. Raises ``ConfigError``."""
    kind = PROCESS_SETTINGS[process]
    config = load_config(environ, dotenv_path, process=process)
    return kind(**{field.name: getattr(config, field.name) for field in dataclasses.fields(kind)})


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


class _Reader(Reader):
    def __init__(self, values: Mapping[str, str], process: str | None):
        super().__init__(values)
        self.ignored = {
            "web": WORKER_ONLY | WATCHDOG_ONLY,
            "worker": WEB_ONLY | WATCHDOG_ONLY,
            "watchdog": WEB_ONLY | WORKER_ONLY,
        }.get(process or "", frozenset())

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

    def worker_endpoints(self, data_dir: Path) -> tuple[str, ...]:
        """PATREON_WORKER_ENDPOINTS (a comma list), else PATREON_WORKER_ENDPOINT, else
        one ipc:// socket per worker under DATA_DIR (WORKER_PROCESSES of them)."""
        listed = self.text("PATREON_WORKER_ENDPOINTS")
        if listed:
            name, endpoints = "PATREON_WORKER_ENDPOINTS", [e.strip() for e in listed.split(",") if e.strip()]
        elif self.text("PATREON_WORKER_ENDPOINT"):
            name, endpoints = "PATREON_WORKER_ENDPOINT", [self.text("PATREON_WORKER_ENDPOINT")]
        else:
            count = self.integer("WORKER_PROCESSES", 1, 1, 1000)
            name = "WORKER_PROCESSES"
            if count == 1:
                endpoints = [f"ipc://{data_dir / 'worker.sock'}"]
            else:
                endpoints = [f"ipc://{data_dir / f'worker-{i}.sock'}" for i in range(count)]
        for endpoint in endpoints:
            if not endpoint.startswith(("ipc://", "tcp://")):
                self.problems.append((name, f"must be ipc://PATH or tcp://HOST:PORT, got {endpoint!r}"))
            elif endpoint.startswith("ipc://") and len(endpoint) > 100:
                # libzmq limits ipc paths to the size of sockaddr_un.sun_path.
                self.problems.append((name, "ipc path is too long (over 100 chars)"))
        if len(set(endpoints)) != len(endpoints):
            self.problems.append((name, "names one endpoint twice"))
        return tuple(endpoints) or (f"ipc://{data_dir / 'worker.sock'}",)

    def build(self) -> Config:
        host = self.text("HOST", "127.0.0.1")
        port = self.integer("PORT", 6969, 1, 65535)
        # Several web processes (numprocs): each listens on PORT + its supervisord
        # process_num; the redirect URI's default keeps PORT (nginx's front).
        web_process_num = self.integer("WEB_PROCESS_NUM", 0, 0, 999)
        if port + web_process_num > 65535:
            self.problems.append(("WEB_PROCESS_NUM", f"puts the port above 65535 (PORT={port})"))
        data_dir = Path(self.text("DATA_DIR", str(PROJECT_DIR / "var"))).resolve()
        endpoints = self.worker_endpoints(data_dir)
        endpoint = endpoints[0]
        process_num = self.process_slot(
            "WORKER_NUMPROCS",
            "WORKER_PROCESS_NUM",
            len(endpoints),
            what="worker(s)",
            count_setting="WORKER_PROCESSES (or PATREON_WORKER_ENDPOINTS)",
            maximum=1000,
        )
        curve_dir = self.text("PATREON_WORKER_CURVE_DIR")

        database_url = self.text("DATABASE_URL", f"sqlite:///{data_dir / 'bridge.sqlite3'}") or ""
        if not database_url.startswith(("sqlite:///", "postgresql://", "postgresql+psycopg://")):
            # Only the scheme is quoted: the rest may hold a password.
            self.problems.append(
                (
                    "DATABASE_URL",
                    f"must be sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB,"
                    f" got scheme {database_url.partition(':')[0]!r}",
                )
            )

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
            self.integer("SANDBOX_PORT", _SANDBOX.port, 1, 65535)
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
            port=min(65535, port + web_process_num),
            data_dir=data_dir,
            worker_endpoint=endpoint,
            database_url=database_url,
            database_pool_size=self.integer("DATABASE_POOL_SIZE", 10, 1, 1000),
            web_database_pool_timeout_s=self.seconds("WEB_DATABASE_POOL_TIMEOUT_S", 0.25, 0.01, 60.0),
            web_database_statement_timeout_s=self.seconds("WEB_DATABASE_STATEMENT_TIMEOUT_S", 2.0, 0.05, 600.0),
            worker_endpoints=endpoints if len(endpoints) > 1 else (),
            worker_process_num=process_num,
            worker_curve_dir=Path(curve_dir).resolve() if curve_dir else None,
            patreon_api_base=(api_base or "").rstrip("/"),
            client_id=client_id,
            client_secret=client_secret,
            redirect_uri=redirect_uri,
            creator_access_token=access,
            creator_refresh_token=refresh,
            webhook_secrets=tuple(s.strip() for s in (webhook_secret or "").split(",") if s.strip()),
            rate_limit_per_minute=self.integer("PATREON_RATE_LIMIT_REQUESTS_PER_MINUTE", 90),
            rate_limit_per_2_seconds=self.integer("PATREON_RATE_LIMIT_REQUESTS_PER_2_SECONDS", 95),
            # Shared whenever a peer may exist: several workers here, or a PostgreSQL store
            # (other hosts' workers may be on it; this host's count cannot tell).
            rate_limit_shared=self.boolean(
                "PATREON_RATE_LIMIT_SHARED", len(endpoints) > 1 or not database_url.startswith("sqlite:")
            ),
            # Patreon's edge counts 4xx over 600 s; how long it blocks is not documented.
            patreon_edge_pause_s=self.seconds("PATREON_EDGE_BLOCK_PAUSE_S", 600.0, 1.0, 86400.0),
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
            worker_threads=self.integer("WORKER_THREADS", 32, 1, 1024),
            trusted_proxy=trusted_proxy,
            test_actions=self.boolean("BRIDGE_TEST_ACTIONS", False),
            allowed_origins=self.exact_origins("ALLOWED_ORIGINS"),
            encryption_keys=self.fernet_keys("BRIDGE_ENCRYPTION_KEY"),
            login_rate_per_minute=self.integer("LOGIN_RATE_LIMIT_PER_MINUTE", 30, 1, 100_000),
            # Defaults: a hang is found within one TICK_5 plus 2 x 2 s of silence (~9 s at
            # worst); 5 unexpected exits within 60 s after start stop the worker.
            watchdog_max_misses=self.integer("WATCHDOG_MAX_MISSES", 2, 1, 100),
            watchdog_ping_timeout_s=self.seconds("WATCHDOG_PING_TIMEOUT_S", 1.0, 0.1, 60.0),
            watchdog_interval_s=self.seconds("WATCHDOG_INTERVAL_S", 1.0, 0.2, 60.0),
            watchdog_crash_limit=self.integer("WATCHDOG_CRASH_LIMIT", 5, 1, 1000),
            watchdog_crash_window_s=self.seconds("WATCHDOG_CRASH_WINDOW_S", 60.0, 1.0, 86400.0),
            member_sync_interval_s=self.seconds("BRIDGE_MEMBER_SYNC_INTERVAL_S", 21600.0, 0.0, 30 * 86400.0),
            entitlement_grace_s=self.seconds("BRIDGE_ENTITLEMENT_GRACE_S", 0.0, 0.0, 90 * 86400.0),
            member_pii=self.boolean("BRIDGE_MEMBER_PII", False),
        )
        problems = [(name, problem) for name, problem in self.problems if name not in self.ignored]
        if problems:
            raise ConfigError(problems)
        return config
