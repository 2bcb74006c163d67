"""The environment every process reads, and the one live-mode rule."""

from __future__ import annotations

from pathlib import Path

from settings.config import load_config
from settings.environment import LIVE_CREDENTIALS, live_mode, read_environment

NO_DOTENV = Path("/nonexistent/.env")


def test_any_patreon_credential_means_live_mode_and_blank_ones_do_not():
    assert not live_mode({})
    assert not live_mode({name: "  " for name in LIVE_CREDENTIALS})
    for name in LIVE_CREDENTIALS:
        assert live_mode({name: "x"}), name


def test_the_config_follows_the_same_rule():
    live = {"PATREON_CLIENT_ID": "i", "PATREON_CLIENT_SECRET": "s", "PATREON_REDIRECT_URI": "https://e/cb"}
    assert live_mode(live) and load_config(live, NO_DOTENV).mode == "live"
    assert not live_mode({}) and load_config({}, NO_DOTENV).mode == "sandbox"


def test_the_environment_wins_over_the_dotenv_file(tmp_path):
    dotenv = tmp_path / ".env"
    dotenv.write_text("PORT=7000\nHOST=0.0.0.0\n# a comment\nexport WEB_THREADS='8'\n")
    values = read_environment({"PORT": "7100"}, dotenv)
    assert (values["PORT"], values["HOST"], values["WEB_THREADS"]) == ("7100", "0.0.0.0", "8")
    assert read_environment({"PORT": "1"}, tmp_path / "missing") == {"PORT": "1"}


def test_session_secret_is_accepted_and_ignored():
    assert load_config({"SESSION_SECRET": "anything"}, NO_DOTENV) == load_config({}, NO_DOTENV)
