"""The live program's settings: environment first, then ``.env``, then defaults.

Read the same way as ``settings.config`` (and reported the same way: one
``❌ Configuration error`` line per bad variable, exit 78). What web reads too (the
subscribe-token key and lifetime, the wake-up endpoints, ``LIVE_PORT``) is read by
``live_events.settings``, the contract between the two programs.

Several live processes (supervisord's ``numprocs``, docs/scaling-out.md "Many
processes"): live_NN listens on ``LIVE_PORT + NN`` (``LIVE_PROCESS_NUM``) and binds the
NN-th wake-up endpoint; ``LIVE_PROCESSES`` tells web how many there are, and a live
process whose ``LIVE_NUMPROCS`` (supervisord's count) differs refuses to start, as a
worker does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from live.collector import DEFAULT_THRESHOLDS, parse_thresholds
from live_events.settings import DEFAULT_PORT, endpoints, token_key, token_ttl
from settings.config import ConfigError
from settings.environment import read_environment
from settings.reader import Reader


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


def _process_endpoint(read: Reader, every: tuple[str, ...]) -> str:
    """This process's endpoint; supervisord's count (LIVE_NUMPROCS) must match LIVE_PROCESSES."""
    num = read.process_slot(
        "LIVE_NUMPROCS", "LIVE_PROCESS_NUM", len(every), what="live process(es)", count_setting="LIVE_PROCESSES", maximum=100
    )
    return every[num]


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
    key = token_key(read, mode, data_dir)
    endpoint = _process_endpoint(read, endpoints(read, data_dir))
    # live_NN listens on LIVE_PORT + NN (LIVE_PROCESS_NUM, from supervisord.conf).
    port = read.integer("LIVE_PORT", DEFAULT_PORT, 1, 65535) + read.integer("LIVE_PROCESS_NUM", 0, 0, 99)
    if port > 65535:
        read.problems.append(("LIVE_PROCESS_NUM", "puts the port above 65535"))
    settings = LiveSettings(
        host=read.text("LIVE_HOST", "127.0.0.1"),
        port=min(port, 65535),
        max_connections=read.integer("LIVE_MAX_CONNECTIONS", 10_000, 1, 1_000_000),
        client_buffer_events=read.integer("LIVE_CLIENT_BUFFER_EVENTS", 256, 1, 100_000),
        token_ttl_s=token_ttl(read),
        cors_origins=read.origins("LIVE_CORS_ORIGINS"),
        public_feed=read.boolean("LIVE_PUBLIC_FEED", False),
        notify_endpoint=endpoint,
        poll_interval_s=read.seconds("LIVE_POLL_INTERVAL_S", 1.0, 0.05, 60.0),
        gc_thresholds=read.parsed("LIVE_GC_THRESHOLDS", parse_thresholds, DEFAULT_THRESHOLDS),
        token_key=key,
    )
    if read.problems:
        raise ConfigError(read.problems)
    return settings
