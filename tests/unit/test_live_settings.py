"""The live program's settings: defaults, one problem per bad variable, the token key."""

from __future__ import annotations

from pathlib import Path

import pytest

from live.settings import load_settings
from live_events.settings import TOKEN_KEY_FILE, endpoint_settings, token_settings
from settings.config import ConfigError

NO_ENV_FILE = Path("/nonexistent/.env")


def test_defaults_in_sandbox_mode_generate_one_key_that_web_reads_too(tmp_path):
    settings = load_settings("sandbox", tmp_path, {}, NO_ENV_FILE)
    assert (settings.port, settings.max_connections, settings.public_feed) == (6971, 10_000, False)
    assert settings.notify_endpoint == f"ipc://{tmp_path / 'live-notify.sock'}"
    key = (tmp_path / TOKEN_KEY_FILE).read_text().strip().encode()
    assert settings.token_key == key and len(key) >= 32
    assert (tmp_path / TOKEN_KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert token_settings("sandbox", tmp_path, {}, NO_ENV_FILE) == (key, 3600.0)  # web's view: the same key
    assert load_settings("sandbox", tmp_path, {}, NO_ENV_FILE).token_key == key  # made once


def test_live_mode_needs_a_key_and_each_bad_variable_is_named(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings(
            "live",
            tmp_path,
            {
                "LIVE_PORT": "0",
                "LIVE_PUBLIC_FEED": "maybe",
                "LIVE_CORS_ORIGINS": "site.example",
                "LIVE_NOTIFY_ENDPOINT": "udp://x",
                "LIVE_GC_THRESHOLDS": "700,10",
            },
            NO_ENV_FILE,
        )
    names = [name for name, _problem in caught.value.problems]
    assert sorted(names) == sorted(
        ["LIVE_TOKEN_KEY", "LIVE_PORT", "LIVE_PUBLIC_FEED", "LIVE_CORS_ORIGINS", "LIVE_NOTIFY_ENDPOINT", "LIVE_GC_THRESHOLDS"]
    )
    assert not (tmp_path / TOKEN_KEY_FILE).exists()  # live mode never generates one
    with pytest.raises(ConfigError):
        load_settings("live", tmp_path, {"LIVE_TOKEN_KEY": "short"}, NO_ENV_FILE)
    settings = load_settings("live", tmp_path, {"LIVE_TOKEN_KEY": "x" * 32, "LIVE_CORS_ORIGINS": "https://a.example"}, NO_ENV_FILE)
    assert settings.token_key == b"x" * 32 and settings.cors_origins == ("https://a.example",)


def test_the_environment_wins_over_dotenv(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("LIVE_PORT=7001\nLIVE_MAX_CONNECTIONS=50\n")
    settings = load_settings("sandbox", tmp_path, {"LIVE_PORT": "7002", "LIVE_GC_THRESHOLDS": "700, 10, 10"}, dotenv)
    assert (settings.port, settings.max_connections, settings.gc_thresholds) == (7002, 50, (700, 10, 10))


def test_the_fd_limits_are_sized_for_the_connection_cap():
    # Every live connection is a file descriptor: supervisord's minfds (its children
    # inherit it) and the systemd unit's LimitNOFILE (supervisord refuses to start if
    # minfds is above the hard limit) must hold the default cap plus live's own fds.
    import configparser
    import re

    from live.__main__ import FD_RESERVE

    repo = Path(__file__).resolve().parents[2]
    conf = configparser.RawConfigParser(inline_comment_prefixes=(";",))
    conf.read(repo / "supervisord.conf")
    minfds = int(conf["supervisord"]["minfds"])
    limit = int(re.search(r"^LimitNOFILE=(\d+)$", (repo / "deploy" / "patreon-bridge.service").read_text(), re.M)[1])
    cap = load_settings("sandbox", Path("/nonexistent"), {}, NO_ENV_FILE).max_connections
    assert cap + FD_RESERVE <= minfds <= limit


def test_each_of_several_live_processes_takes_its_port_and_socket_and_web_pushes_to_all(tmp_path):
    env = {"LIVE_PROCESSES": "2", "LIVE_NUMPROCS": "2", "LIVE_PORT": "7000"}
    first = load_settings("sandbox", tmp_path, {**env, "LIVE_PROCESS_NUM": "0"}, NO_ENV_FILE)
    second = load_settings("sandbox", tmp_path, {**env, "LIVE_PROCESS_NUM": "1"}, NO_ENV_FILE)
    sockets = (f"ipc://{tmp_path / 'live-notify-0.sock'}", f"ipc://{tmp_path / 'live-notify-1.sock'}")
    assert (first.port, first.notify_endpoint) == (7000, sockets[0])
    assert (second.port, second.notify_endpoint) == (7001, sockets[1])
    assert endpoint_settings(tmp_path, {"LIVE_PROCESSES": "2"}) == sockets
    assert endpoint_settings(tmp_path, {}) == (f"ipc://{tmp_path / 'live-notify.sock'}",)


def test_a_live_process_count_that_disagrees_with_supervisord_is_refused(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings("sandbox", tmp_path, {"LIVE_NUMPROCS": "2", "LIVE_PROCESS_NUM": "1"}, NO_ENV_FILE)
    assert [name for name, _ in caught.value.problems] == ["LIVE_NUMPROCS", "LIVE_PROCESS_NUM"]
    with pytest.raises(ConfigError) as caught:
        endpoint_settings(tmp_path, {"LIVE_PROCESSES": "2", "LIVE_NOTIFY_ENDPOINT": "tcp://127.0.0.1:7100"})
    assert [name for name, _ in caught.value.problems] == ["LIVE_NOTIFY_ENDPOINT"]
