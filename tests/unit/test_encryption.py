"""Tokens and webhook secrets are sealed at rest (store/encryption.py): the cipher, the
migration of plaintext rows at start, key rotation (``python -m store.rekey``), the
sandbox's generated key, live mode refusing to start without a key, and the raw
SQLite files (database and WAL) holding no token or secret in clear text."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from patreon_client.oauth import Grant, OAuthClient
from settings.config import load_config
from store import encryption, webhook_secrets
from store.database import Store
from store.encryption import PREFIX, Cipher, KeyMissing, UndecryptableValue, keys_for, new_key, seal_all
from store.tokens import CREATOR, session_principal
from tests.unit.test_tokens import FakePatreon, deadline
from worker.tokens import TokenStore

REPO = Path(__file__).resolve().parents[2]
NO_DOTENV = Path("/nonexistent/.env")
ACCESS = "plain-access-token-0123456789abcdef"
REFRESH = "plain-refresh-token-0123456789abcdef"
SECRET = "plain-webhook-secret-0123456789abcdef"
LIVE = {
    "PATREON_CLIENT_ID": "id",
    "PATREON_CLIENT_SECRET": "client-secret-value",
    "PATREON_REDIRECT_URI": "https://example.com/auth/patreon/callback",
}


def test_a_sealed_value_opens_and_is_authenticated():
    cipher = Cipher([new_key()])
    sealed = cipher.seal(ACCESS)
    assert sealed.startswith(PREFIX) and ACCESS not in sealed
    assert cipher.seal(ACCESS) != sealed  # a fresh IV each time
    assert cipher.open(sealed) == ACCESS
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(UndecryptableValue):
        cipher.open(tampered)
    with pytest.raises(UndecryptableValue):
        Cipher([new_key()]).open(sealed)
    assert cipher.seal("") == "" and cipher.seal(None) is None


def test_the_first_key_encrypts_and_every_key_decrypts():
    old, new = new_key(), new_key()
    under_old = Cipher([old]).seal(ACCESS)
    both = Cipher([new, old])
    assert both.open(under_old) == ACCESS
    assert Cipher([new]).open(both.seal(ACCESS)) == ACCESS
    rotated = both.reseal(under_old)
    assert Cipher([new]).open(rotated) == ACCESS


def plaintext_store(path: Path) -> Store:
    """A store written before encryption: plaintext tokens and secrets."""
    store = Store(path)
    store.migrate()
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO tokens (principal, access_token, refresh_token, updated_at) VALUES (:p, :a, :r, 0)",
            {"p": session_principal("s" * 43), "a": ACCESS, "r": REFRESH},
        )
        conn.execute(
            "INSERT INTO tokens (principal, access_token, refresh_token, updated_at) VALUES (:p, '', NULL, 0)",
            {"p": CREATOR},
        )
    webhook_secrets.save(store, "hook-1", SECRET)
    return store


def raw(store: Store) -> bytes:
    """Everything SQLite has on disk for the store: the database, its WAL, its shm."""
    data = b""
    for suffix in ("", "-wal", "-shm"):
        path = Path(str(store.path) + suffix)
        if path.exists():
            data += path.read_bytes()
    return data


def test_plaintext_rows_are_sealed_at_start_and_still_work(tmp_path):
    path = tmp_path / "bridge.sqlite3"
    plaintext_store(path)
    config = load_config({"BRIDGE_ENCRYPTION_KEY": new_key(), "DATA_DIR": str(tmp_path)}, NO_DOTENV)
    store = encryption.open_store(config)  # what web and worker do at start
    with store.read() as conn:
        rows = [
            tuple(row[k] for k in row.keys())
            for row in conn.execute("SELECT access_token, refresh_token FROM tokens ORDER BY principal")
        ]
    assert tuple(rows[0]) == ("", None)  # the dead creator marker stays as it is
    assert all(v.startswith(PREFIX) for v in rows[1])
    assert webhook_secrets.all_secrets(store) == [SECRET]
    tokens = TokenStore(store, OAuthClient(config, FakePatreon()))
    token = tokens.load(session_principal("s" * 43))
    assert (token.access_token, token.refresh_token) == (ACCESS, REFRESH)
    assert seal_all(store, store.cipher) == 0  # a second start changes nothing
    data = raw(store)  # sealing compacted the file: the plaintext bytes are gone from disk too
    for value in (ACCESS, REFRESH, SECRET):
        assert value.encode() not in data


def test_the_raw_files_hold_no_token_or_secret(tmp_path):
    """Tokens written by the worker's TokenStore (grant, refresh) and a webhook secret
    never reach the database file or its WAL in clear text."""
    store = Store(tmp_path / "bridge.sqlite3", Cipher([new_key()]))
    store.migrate()
    patreon = FakePatreon()
    tokens = TokenStore(store, OAuthClient(load_config({}, NO_DOTENV), patreon))
    patreon.issue(ACCESS, REFRESH)
    principal = session_principal("t" * 43)
    tokens.save_grant(principal, Grant(ACCESS, REFRESH, 3600, "identity", "Bearer"), "42")
    rotated = tokens.refresh(principal, deadline())
    webhook_secrets.save(store, "hook-1", SECRET)
    data = raw(store)
    assert Path(str(store.path) + "-wal").stat().st_size > 0  # the WAL was read, not empty
    for value in (ACCESS, REFRESH, rotated.access_token, rotated.refresh_token, SECRET):
        assert value.encode() not in data, value
    assert webhook_secrets.all_secrets(store) == [SECRET]


def test_rekey_moves_every_value_to_the_first_key(tmp_path):
    old, new = new_key(), new_key()
    store = Store(tmp_path / "bridge.sqlite3", Cipher([old]))
    store.migrate()
    webhook_secrets.save(store, "hook-1", SECRET)
    both = Store(store.path, Cipher([new, old]))
    assert seal_all(both, both.cipher, rotate=True) == 1
    assert webhook_secrets.all_secrets(Store(store.path, Cipher([new]))) == [SECRET]
    with pytest.raises(UndecryptableValue):
        webhook_secrets.all_secrets(Store(store.path, Cipher([old])))


def test_a_start_with_a_key_that_opens_nothing_is_refused(tmp_path):
    store = Store(tmp_path / "bridge.sqlite3", Cipher([new_key()]))
    store.migrate()
    webhook_secrets.save(store, "hook-1", SECRET)
    wrong = Cipher([new_key()])
    with pytest.raises(UndecryptableValue):
        seal_all(Store(store.path, wrong), wrong)


def test_sandbox_mode_generates_one_key_file(tmp_path):
    keys = keys_for("sandbox", (), tmp_path)
    assert keys == keys_for("sandbox", (), tmp_path)  # the second process reads the same
    path = tmp_path / encryption.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert encryption.is_valid_key(keys[0])
    assert keys_for("sandbox", ("configured",), tmp_path) == ["configured"]


def test_live_mode_without_a_key_raises(tmp_path):
    with pytest.raises(KeyMissing, match="BRIDGE_ENCRYPTION_KEY"):
        keys_for("live", (), tmp_path)
    assert not (tmp_path / encryption.KEY_FILE).exists()


def test_a_malformed_key_is_a_configuration_error():
    from settings.config import ConfigError

    with pytest.raises(ConfigError, match="BRIDGE_ENCRYPTION_KEY") as caught:
        load_config({"BRIDGE_ENCRYPTION_KEY": f"{new_key()},not-a-key"}, NO_DOTENV)
    assert "not-a-key" not in str(caught.value)  # a key is never echoed back


@pytest.mark.parametrize("program", ["web", "worker"])
def test_live_mode_refuses_to_start_without_a_key(tmp_path, program):
    env = {
        "PATH": os.environ["PATH"],
        "DATA_DIR": str(tmp_path),
        "PORT": "1",
        "PATREON_WORKER_ENDPOINT": f"ipc://{tmp_path}/w.sock",
        **LIVE,
    }
    done = subprocess.run(
        [sys.executable, "-m", program],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 78, done.stderr
    errors = [line for line in done.stderr.splitlines() if "BRIDGE_ENCRYPTION_KEY" in line]
    assert len(errors) == 1, done.stderr
    assert not (tmp_path / "bridge.sqlite3").exists()  # nothing was written before the refusal


def test_the_rekey_command(tmp_path):
    old, new = new_key(), new_key()
    store = Store(tmp_path / "bridge.sqlite3", Cipher([old]))
    store.migrate()
    webhook_secrets.save(store, "hook-1", SECRET)
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(REPO), "DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "store.rekey"],
        cwd=tmp_path,
        env={**env, "BRIDGE_ENCRYPTION_KEY": f"{new},{old}"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "re-encrypted 1 row(s)" in done.stdout and SECRET not in done.stdout
    assert webhook_secrets.all_secrets(Store(store.path, Cipher([new]))) == [SECRET]
    printed = subprocess.run(
        [sys.executable, "-m", "store.rekey", "--new-key"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert encryption.is_valid_key(printed.stdout.strip())
