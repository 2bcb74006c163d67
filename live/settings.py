"""The live program's settings: environment first, then ``.env``, then defaults.

Read the same way as ``settings.config`` (and reported the same way: one
``❌ Configuration error`` line per bad variable, exit 78). web reads two of them too:
the subscribe-token key (``token_key``), which web signs with and live checks, and
the wake-up endpoints (``LIVE_NOTIFY_ENDPOINT``, or one per ``LIVE_PROCESSES``) web
pushes to after a commit.

Several live processes (supervisord's ``numprocs``, docs/scaling-out.md "Many
processes"): live_NN listens on ``LIVE_PORT + NN`` (``LIVE_PROCESS_NUM``) and binds the
NN-th wake-up endpoint; ``LIVE_PROCESSES`` tells web how many there are, and a live
process whose ``LIVE_NUMPROCS`` (supervisord's count) differs refuses to start, as a
worker does.

The token key: ``LIVE_TOKEN_KEY`` (at least 32 characters). Unset in sandbox mode, one
is generated once under ``DATA_DIR`` (``live-token.key``, mode 0600) and read by both
programs; unset in live mode is an error for live and a 503 for web's token route.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from live.collector import DEFAULT_THRESHOLDS, parse_thresholds
from settings.config import ConfigError
from settings.environment import read_environment
from settings.reader import Reader

TOKEN_KEY_FILE = "live-token.key"
MIN_TOKEN_KEY_CHARS = 32
DEFAULT_PORT = 6971


@dataclasses.dataclass(frozen=True)
class LiveSettings:
    host: str
    port: int
    max_connections: int
    # Events a client may have queued and not yet taken before it is disconnected.
    client_buffer_events: int
    token_ttl_s: float
    cors_origins: tuple[str, ...]  # empty: same origin only
    public_feed: bool
    notify_endpoint: str  # this process's: the LIVE_PROCESS_NUM-th of notify_endpoints
    poll_interval_s: float
    gc_thresholds: tuple[int, int, int]  # gc.set_threshold's (young, middle, old): live.collector
    token_key: bytes | None = dataclasses.field(repr=False)


def sandbox_token_key(data_dir: Path) -> bytes:
    """The generated key of a sandbox install: made once, atomically, read by web and live."""
    path = Path(data_dir) / TOKEN_KEY_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        # Written whole before anyone can read a partial key: a reader waits below.
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
    for _ in range(100):
        text = path.read_text().strip()
        if len(text) >= MIN_TOKEN_KEY_CHARS:
            return text.encode()
        os.sched_yield()
    raise ConfigError([("LIVE_TOKEN_KEY", f"the generated key in {path} is unreadable")])


def port_setting(environ: Mapping[str, str] | None = None, dotenv_path: Path | None = None) -> int:
    """``LIVE_PORT`` alone: where web's demo page sends browsers when there is no nginx."""
    read = Reader(read_environment(environ, dotenv_path))
    port = read.integer("LIVE_PORT", DEFAULT_PORT, 1, 65535)
    if read.problems:
        raise ConfigError(read.problems)
    return port


def endpoint_settings(data_dir: Path, environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Every live process's wake-up endpoint: what web pushes each commit to."""
    read = Reader(read_environment(environ))
    endpoints = _endpoints(read, data_dir)
    if read.problems:
        raise ConfigError(read.problems)
    return endpoints


def _endpoints(read: Reader, data_dir: Path) -> tuple[str, ...]:
    """One endpoint per live process: ``LIVE_NOTIFY_ENDPOINT`` (default
    ``var/live-notify.sock``) for one, ``var/live-notify-N.sock`` for LIVE_PROCESSES=N."""
    count = read.integer("LIVE_PROCESSES", 1, 1, 100)
    if count == 1:
        endpoint = read.text("LIVE_NOTIFY_ENDPOINT", f"ipc://{Path(data_dir) / 'live-notify.sock'}")
    else:
        if read.text("LIVE_NOTIFY_ENDPOINT"):
            read.problems.append(("LIVE_NOTIFY_ENDPOINT", f"names one endpoint but LIVE_PROCESSES={count}: unset it"))
        return tuple(f"ipc://{Path(data_dir) / f'live-notify-{i}.sock'}" for i in range(count))
    if not endpoint.startswith(("ipc://", "tcp://")):
        read.problems.append(("LIVE_NOTIFY_ENDPOINT", f"must be ipc://PATH or tcp://HOST:PORT, got {endpoint!r}"))
    elif endpoint.startswith("ipc://") and len(endpoint) > 100:
        read.problems.append(("LIVE_NOTIFY_ENDPOINT", "ipc path is too long (over 100 chars)"))
    return (endpoint,)


def _process_endpoint(read: Reader, endpoints: tuple[str, ...]) -> str:
    """This process's endpoint; supervisord's count (LIVE_NUMPROCS) must match LIVE_PROCESSES."""
    num = read.process_slot(
        "LIVE_NUMPROCS", "LIVE_PROCESS_NUM", len(endpoints), what="live process(es)", count_setting="LIVE_PROCESSES", maximum=100
    )
    return endpoints[num]


def _token_key(read: Reader, mode: str, data_dir: Path) -> bytes | None:
    key_text = read.text("LIVE_TOKEN_KEY")
    if key_text is not None:
        if len(key_text) < MIN_TOKEN_KEY_CHARS:
            read.problems.append(("LIVE_TOKEN_KEY", f"must be at least {MIN_TOKEN_KEY_CHARS} characters"))
            return None
        return key_text.encode()
    if mode == "sandbox":
        return sandbox_token_key(data_dir)
    read.problems.append(("LIVE_TOKEN_KEY", "is required in live mode (subscribe tokens are signed with it)"))
    return None


def _token_ttl(read: Reader) -> float:
    return read.seconds("LIVE_TOKEN_TTL_S", 3600.0, 10.0, 7 * 86400.0)


def token_settings(
    mode: str, data_dir: Path, environ: Mapping[str, str] | None = None, dotenv_path: Path | None = None
) -> tuple[bytes, float]:
    """What web's token route needs: ``(key, longest lifetime in seconds)``."""
    read = Reader(read_environment(environ, dotenv_path))
    key, ttl = _token_key(read, mode, data_dir), _token_ttl(read)
    if read.problems or key is None:
        raise ConfigError(read.problems)
    return key, ttl


def load_settings(
    mode: str,
    data_dir: Path,
    environ: Mapping[str, str] | None = None,
    dotenv_path: Path | None = None,
) -> LiveSettings:
    """Build the settings, or raise ``ConfigError`` naming every bad variable.

    ``mode`` and ``data_dir`` come from the bridge's ``settings.config``: the sandbox key lives
    under DATA_DIR, and live mode requires a configured key.
    """
    read = Reader(read_environment(environ, dotenv_path))
    token_key = _token_key(read, mode, data_dir)
    endpoint = _process_endpoint(read, _endpoints(read, data_dir))
    # live_NN listens on LIVE_PORT + NN (LIVE_PROCESS_NUM, from supervisord.conf).
    port = read.integer("LIVE_PORT", DEFAULT_PORT, 1, 65535) + read.integer("LIVE_PROCESS_NUM", 0, 0, 99)
    if port > 65535:
        read.problems.append(("LIVE_PROCESS_NUM", "puts the port above 65535"))
    settings = LiveSettings(
        host=read.text("LIVE_HOST", "127.0.0.1"),
        port=min(port, 65535),
        max_connections=read.integer("LIVE_MAX_CONNECTIONS", 10_000, 1, 1_000_000),
        client_buffer_events=read.integer("LIVE_CLIENT_BUFFER_EVENTS", 256, 1, 100_000),
        token_ttl_s=_token_ttl(read),
        cors_origins=read.origins("LIVE_CORS_ORIGINS"),
        public_feed=read.boolean("LIVE_PUBLIC_FEED", False),
        notify_endpoint=endpoint,
        poll_interval_s=read.seconds("LIVE_POLL_INTERVAL_S", 1.0, 0.05, 60.0),
        gc_thresholds=read.parsed("LIVE_GC_THRESHOLDS", parse_thresholds, DEFAULT_THRESHOLDS),
        token_key=token_key,
    )
    if read.problems:
        raise ConfigError(read.problems)
    return settings
