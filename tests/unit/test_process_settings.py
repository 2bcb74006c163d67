"""Settings per process (issue 10): each entry point gets only its own fields, read
and validated once, and together they are exactly the full ``Config``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from settings.config import (
    Config,
    ConfigError,
    WatchdogSettings,
    WebSettings,
    WorkerSettings,
    load_config,
    load_settings,
)

NO_DOTENV = Path("/nonexistent/.env")
LIVE = {
    "PATREON_CLIENT_ID": "id",
    "PATREON_CLIENT_SECRET": "client-secret-value",
    "PATREON_REDIRECT_URI": "https://example.com/auth/patreon/callback",
    "PATREON_CREATOR_ACCESS_TOKEN": "creator-access-value",
    "PATREON_CREATOR_REFRESH_TOKEN": "creator-refresh-value",
}


def names(kind: type) -> set[str]:
    return {field.name for field in dataclasses.fields(kind)}


def test_the_process_settings_together_are_the_whole_config():
    assert names(WebSettings) | names(WorkerSettings) | names(WatchdogSettings) == names(Config)


def test_web_never_holds_the_client_secret_or_the_creator_tokens():
    web = load_settings("web", LIVE, NO_DOTENV)
    assert type(web) is WebSettings
    for secret in ("client_secret", "creator_access_token", "creator_refresh_token"):
        assert not hasattr(web, secret)
    assert "client-secret-value" not in repr(web) and "creator-access-value" not in repr(web)
    assert (web.mode, web.client_id, web.port) == ("live", "id", 6969)


def test_each_process_gets_the_values_the_whole_config_has():
    env = {**LIVE, "WORKER_THREADS": "8", "WATCHDOG_CRASH_LIMIT": "9", "PORT": "8080"}
    full = load_config(env, NO_DOTENV)
    for process, kind in (("web", WebSettings), ("worker", WorkerSettings), ("watchdog", WatchdogSettings)):
        settings = load_settings(process, env, NO_DOTENV)
        assert type(settings) is kind
        assert {name: getattr(settings, name) for name in names(kind)} == {
            name: getattr(full, name) for name in names(kind)
        }
    assert load_settings("worker", env, NO_DOTENV).worker_threads == 8
    assert load_settings("watchdog", env, NO_DOTENV).watchdog_crash_limit == 9
    assert load_settings("worker", env, NO_DOTENV).store_path == full.store_path


def test_a_bad_variable_stops_only_the_process_that_reads_it():
    with pytest.raises(ConfigError) as caught:
        load_settings("worker", {"PATREON_EDGE_BLOCK_PAUSE_S": "soon"}, NO_DOTENV)
    assert caught.value.lines() == [
        "❌ Configuration error: PATREON_EDGE_BLOCK_PAUSE_S must be a number of seconds, got 'soon'"
    ]
    assert load_settings("web", {"PATREON_EDGE_BLOCK_PAUSE_S": "soon"}, NO_DOTENV).mode == "sandbox"
    with pytest.raises(ConfigError):
        load_settings("web", {"WEB_THREADS": "2"}, NO_DOTENV)
    assert load_settings("watchdog", {"WEB_THREADS": "2"}, NO_DOTENV).watchdog_max_misses == 2
