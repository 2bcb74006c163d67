"""Configuration: defaults, the web app's callback as default redirect URI, and one
stderr line per bad variable with exit code 78."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sandbox.settings import EXIT_CONFIG, PROJECT_DIR, STATE_DIR_NAME, SandboxSettings, SettingsError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_match_the_documented_values():
    settings = SandboxSettings.from_env({})
    # Built from the environment, the sandbox keeps its state under the project's var/.
    assert settings == SandboxSettings(state_dir=PROJECT_DIR / "var" / STATE_DIR_NAME)
    assert (settings.host, settings.port, settings.threads) == ("127.0.0.1", 6970, 48)
    assert (settings.seed, settings.members) == (1, 120)
    assert settings.client_id == "sandbox-client-id"
    assert settings.creator_access_token == "sandbox-creator-access-token"
    assert settings.creator_refresh_token == "sandbox-creator-refresh-token"
    assert (settings.rate_limit_per_2_seconds, settings.rate_limit_per_minute) == (100, 100)
    assert (settings.token_ttl_s, settings.code_ttl_s) == (2678400, 600)
    # Issue 15 item 1: Patreon's retry schedule (1 h, 3 h, 1 d, 3 d, weekly, then
    # paused) replaced the fixed 5 s retry paused after 3 failures.
    assert settings.webhook_timeout_s == 10.0
    assert (settings.webhook_retry_s, settings.webhook_pause_after) == (None, None)
    assert [settings.retry_delay_s(n) for n in range(1, 10)] == [
        3600,
        10800,
        86400,
        259200,
        604800,
        604800,
        604800,
        604800,
        604800,
    ]
    assert settings.pause_after == 9 and settings.time_scale == 1.0
    assert settings.webhook_uri is None
    assert settings.webhook_secret == "sandbox-webhook-secret"
    assert settings.redirect_uris == (
        "http://127.0.0.1:6969/auth/patreon/callback",
        "http://localhost:6969/auth/patreon/callback",
    )


def test_default_redirect_uris_follow_the_web_apps_host_and_port():
    settings = SandboxSettings.from_env({"HOST": "0.0.0.0", "PORT": "8080"})
    assert settings.redirect_uris == (
        "http://0.0.0.0:8080/auth/patreon/callback",
        "http://localhost:8080/auth/patreon/callback",
    )


def test_every_variable_is_read():
    settings = SandboxSettings.from_env(
        {
            "SANDBOX_HOST": "0.0.0.0",
            "SANDBOX_PORT": "7000",
            "SANDBOX_THREADS": "8",
            "SANDBOX_SEED": "42",
            "SANDBOX_MEMBERS": "2500",
            "SANDBOX_CLIENT_ID": "cid",
            "SANDBOX_CLIENT_SECRET": "csecret",
            "SANDBOX_REDIRECT_URIS": "https://a.example/cb, http://b.example/cb",
            "SANDBOX_CREATOR_ACCESS_TOKEN": "cat",
            "SANDBOX_CREATOR_REFRESH_TOKEN": "crt",
            "SANDBOX_RATE_LIMIT_PER_2_SECONDS": "95",
            "SANDBOX_RATE_LIMIT_PER_MINUTE": "90",
            "SANDBOX_TOKEN_TTL_S": "60",
            "SANDBOX_CODE_TTL_S": "30",
            "SANDBOX_WEBHOOK_TIMEOUT_S": "2.5",
            "SANDBOX_WEBHOOK_RETRY_S": "0.2",
            "SANDBOX_WEBHOOK_PAUSE_AFTER": "2",
            "SANDBOX_WEBHOOK_URI": "http://127.0.0.1:6969/webhooks/patreon",
            "SANDBOX_WEBHOOK_SECRET": "whsec",
            "SANDBOX_STATE_DIR": "off",
        }
    )
    assert settings == SandboxSettings(
        host="0.0.0.0",
        port=7000,
        threads=8,
        seed=42,
        members=2500,
        client_id="cid",
        client_secret="csecret",
        redirect_uris=("https://a.example/cb", "http://b.example/cb"),
        creator_access_token="cat",
        creator_refresh_token="crt",
        rate_limit_per_2_seconds=95,
        rate_limit_per_minute=90,
        token_ttl_s=60,
        code_ttl_s=30,
        webhook_timeout_s=2.5,
        webhook_retry_s=0.2,
        webhook_pause_after=2,
        webhook_uri="http://127.0.0.1:6969/webhooks/patreon",
        webhook_secret="whsec",
    )


def test_time_scale_edge_block_schedule_and_state_dir_settings(tmp_path):
    settings = SandboxSettings.from_env(
        {
            "SANDBOX_TIME_SCALE": "3600",
            "SANDBOX_WEBHOOK_RETRY_SCHEDULE_S": "3600,7200",
            "SANDBOX_EDGE_BLOCK_4XX": "5",
            "SANDBOX_EDGE_BLOCK_WINDOW_S": "60",
            "SANDBOX_EDGE_BLOCK_S": "30",
            "DATA_DIR": str(tmp_path),
        }
    )
    assert settings.time_scale == 3600.0
    assert [settings.retry_delay_s(n) for n in (1, 2, 3)] == [1.0, 2.0, 2.0]
    assert settings.pause_after == 3
    assert (settings.edge_block_4xx, settings.edge_block_window_s, settings.edge_block_s) == (5, 60, 30)
    assert settings.state_dir == tmp_path.resolve() / STATE_DIR_NAME
    explicit = SandboxSettings.from_env({"SANDBOX_STATE_DIR": str(tmp_path / "kept")})
    assert explicit.state_dir == (tmp_path / "kept").resolve()
    with pytest.raises(SettingsError) as caught:
        SandboxSettings.from_env({"SANDBOX_TIME_SCALE": "0", "SANDBOX_WEBHOOK_RETRY_SCHEDULE_S": "1,x"})
    assert len(caught.value.problems) == 2


def test_bad_values_are_reported_one_line_per_variable():
    with pytest.raises(SettingsError) as caught:
        SandboxSettings.from_env(
            {
                "SANDBOX_PORT": "http",
                "SANDBOX_MEMBERS": "-1",
                "SANDBOX_WEBHOOK_URI": "ftp://example.com",
                "SANDBOX_WEBHOOK_TIMEOUT_S": "0",
                "SANDBOX_REDIRECT_URIS": "not a url",
            }
        )
    problems = caught.value.problems
    assert len(problems) == 5
    for name in (
        "SANDBOX_PORT",
        "SANDBOX_MEMBERS",
        "SANDBOX_WEBHOOK_URI",
        "SANDBOX_WEBHOOK_TIMEOUT_S",
        "SANDBOX_REDIRECT_URIS",
    ):
        assert sum(line.startswith(name + ":") for line in problems) == 1


def test_python_m_sandbox_exits_78_on_bad_configuration():
    env = {"PATH": "/usr/bin:/bin", "SANDBOX_PORT": "abc", "SANDBOX_THREADS": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "sandbox"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == EXIT_CONFIG
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr
    assert "SANDBOX_PORT" in lines[0] and "SANDBOX_THREADS" in lines[1]
