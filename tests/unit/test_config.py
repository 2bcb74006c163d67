"""Configuration: defaults, sandbox vs live mode, and one line per bad variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from settings.config import EXIT_CONFIG, ConfigError, load_config

NO_DOTENV = Path("/nonexistent/.env")


def load(env, **kw):
    return load_config(env, NO_DOTENV, **kw)


def test_defaults_are_sandbox_mode():
    config = load({})
    assert config.mode == "sandbox"
    assert config.port == 6969 and config.host == "127.0.0.1"
    assert config.patreon_api_base == "http://127.0.0.1:6970"
    assert config.worker_endpoint.startswith("ipc://") and config.worker_endpoint.endswith("var/worker.sock")
    assert config.rate_limit_per_minute == 90 and config.rate_limit_per_2_seconds == 95
    assert config.webhook_secrets == ("sandbox-webhook-secret",)


def test_live_mode_with_credentials():
    config = load(
        {
            "PATREON_CLIENT_ID": "id",
            "PATREON_CLIENT_SECRET": "secret",
            "PATREON_REDIRECT_URI": "https://example.com/auth/patreon/callback",
            "PATREON_WEBHOOK_SECRET": "new, old",
            "PORT": "8080",
            "DATA_DIR": "/srv/bridge",
        }
    )
    assert config.mode == "live"
    assert config.patreon_api_base == "https://www.patreon.com"
    assert config.webhook_secrets == ("new", "old")
    assert config.store_path == Path("/srv/bridge/bridge.sqlite3")
    assert config.worker_endpoint == "ipc:///srv/bridge/worker.sock"


def test_secrets_stay_out_of_repr():
    config = load(
        {
            "PATREON_CLIENT_ID": "id",
            "PATREON_CLIENT_SECRET": "s3cr3t-value",
            "PATREON_REDIRECT_URI": "https://e.com/cb",
            "BRIDGE_API_KEY": "k3y-value",
        }
    )
    assert "s3cr3t-value" not in repr(config) and "k3y-value" not in repr(config)


def test_every_bad_variable_gets_its_own_line():
    with pytest.raises(ConfigError) as caught:
        load({"PORT": "http", "PATREON_CLIENT_ID": "only-the-id", "PATREON_WORKER_ENDPOINT": "udp://x"})
    names = [name for name, _ in caught.value.problems]
    assert names == ["PORT", "PATREON_WORKER_ENDPOINT", "PATREON_CLIENT_SECRET", "PATREON_REDIRECT_URI"]
    assert all(line.startswith("❌ Configuration error: ") for line in caught.value.lines())
    assert EXIT_CONFIG == 78


def test_half_set_creator_token_pair_is_an_error():
    with pytest.raises(ConfigError) as caught:
        load(
            {
                "PATREON_CLIENT_ID": "i",
                "PATREON_CLIENT_SECRET": "s",
                "PATREON_REDIRECT_URI": "https://e.com/cb",
                "PATREON_CREATOR_ACCESS_TOKEN": "a",
            }
        )
    assert [name for name, _ in caught.value.problems] == ["PATREON_CREATOR_REFRESH_TOKEN"]


def test_worker_only_problems_do_not_stop_web():
    env = {"PATREON_RATE_LIMIT_REQUESTS_PER_MINUTE": "lots"}
    assert load(env, process="web").mode == "sandbox"
    with pytest.raises(ConfigError):
        load(env, process="worker")
    with pytest.raises(ConfigError):
        load({"PORT": "0"}, process="web")
    assert load({"PORT": "0"}, process="worker").mode == "sandbox"


def test_environment_wins_over_dotenv(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("PORT=7000\nHOST=0.0.0.0\n")
    config = load_config({"PORT": "7100"}, dotenv)
    assert (config.port, config.host) == (7100, "0.0.0.0")


def test_several_workers_get_one_ipc_socket_each_and_web_a_port_each():
    config = load({"DATA_DIR": "/srv/b", "WORKER_PROCESSES": "3", "WORKER_NUMPROCS": "3"})
    assert config.endpoints == tuple(f"ipc:///srv/b/worker-{i}.sock" for i in range(3))
    assert config.worker_endpoint == config.endpoints[0] and config.rate_limit_shared is True
    assert load({"DATA_DIR": "/srv/b"}).endpoints == ("ipc:///srv/b/worker.sock",)  # one: as before
    assert load({"DATA_DIR": "/srv/b"}).rate_limit_shared is False
    assert load({"PORT": "7000", "WEB_PROCESS_NUM": "2"}).port == 7002
    listed = load(
        {"PATREON_WORKER_ENDPOINTS": "tcp://10.0.0.5:5601, tcp://10.0.0.6:5601", "WORKER_PROCESS_NUM": "1"}
    )
    assert (
        listed.endpoints == ("tcp://10.0.0.5:5601", "tcp://10.0.0.6:5601") and listed.worker_process_num == 1
    )


@pytest.mark.parametrize(
    ("env", "name"),
    [
        ({"WORKER_PROCESSES": "2", "WORKER_NUMPROCS": "3"}, "WORKER_NUMPROCS"),
        ({"WORKER_PROCESS_NUM": "1"}, "WORKER_PROCESS_NUM"),
        ({"PATREON_WORKER_ENDPOINTS": "tcp://a:1,udp://b:2"}, "PATREON_WORKER_ENDPOINTS"),
        ({"PATREON_WORKER_ENDPOINTS": "tcp://a:1,tcp://a:1"}, "PATREON_WORKER_ENDPOINTS"),
        ({"WORKER_PROCESSES": "0"}, "WORKER_PROCESSES"),
    ],
)
def test_a_worker_count_that_does_not_add_up_stops_the_worker_only(env, name):
    with pytest.raises(ConfigError) as caught:
        load(env, process="worker")
    assert [n for n, _ in caught.value.problems] == [name]
    if name in ("WORKER_NUMPROCS", "WORKER_PROCESS_NUM"):
        load(env, process="web")  # web keeps answering (503 for the missing worker)
