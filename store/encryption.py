"""Encryption at rest for the store's secrets: Patreon access and refresh tokens
(``tokens``) and webhook secrets (``webhook_secrets``).

The cipher is Fernet from ``cryptography`` (AES-128-CBC with an HMAC-SHA256 over
version, timestamp, IV and ciphertext: authenticated, so a changed or truncated value
fails to decrypt instead of decrypting to garbage), behind ``MultiFernet`` for
rotation. Fernet over AES-GCM because it fixes every choice a hand-rolled AES-GCM
format would have to make and test (nonce generation, encoding, versioning), its keys
are plain text that fits an environment variable, and ``MultiFernet.rotate`` is the
re-encryption the rekey command needs.

Keys: ``BRIDGE_ENCRYPTION_KEY``, a comma list of Fernet keys (``python -m
store.rekey --new-key`` prints one). The first encrypts; every one decrypts, so a
rotation is: put the new key first, keep the old after it, restart, run ``python -m
store.rekey``, then drop the old key. In sandbox mode, with no key set, one is
generated once into ``var/encryption.key`` (mode 0600); in live mode web and worker
refuse to start without one (exit 78, one line naming the variable).

Stored form: ``enc1:`` + the Fernet token. A value without the prefix is plaintext
from before this module (migrated by ``seal``, at every start); ``''`` stays ``''``
(it marks a dead creator token). Never log a value, sealed or not.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from settings.generated import generated_secret

log = logging.getLogger(__name__)

PREFIX = "enc1:"
KEY_FILE = "encryption.key"
KEY_VARIABLE = "BRIDGE_ENCRYPTION_KEY"

# (table, key column, secret columns) of every value this module protects.
SEALED_COLUMNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("tokens", "principal", ("access_token", "refresh_token")),
    ("webhook_secrets", "webhook_id", ("secret",)),
)


class KeyMissing(Exception):
    """Live mode without ``BRIDGE_ENCRYPTION_KEY``."""


class UndecryptableValue(Exception):
    """A stored value that no configured key decrypts (a key was dropped too early)."""


def is_valid_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return False


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


class Cipher:
    """Seals and opens the store's secret values under a list of keys (first encrypts)."""

    def __init__(self, keys: Sequence[str]):
        if not keys:
            raise ValueError("at least one key")
        self._fernet = MultiFernet([Fernet(k.encode("ascii")) for k in keys])
        self._first = Fernet(keys[0].encode("ascii"))

    def seal(self, value: str | None) -> str | None:
        if value is None or value == "":
            return value
        return PREFIX + self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def open(self, stored: str | None) -> str | None:
        if stored is None or not stored.startswith(PREFIX):
            return stored  # '' / NULL, or plaintext not yet sealed
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise UndecryptableValue(f"a stored value is sealed under a key not in {KEY_VARIABLE}") from None

    def reseal(self, stored: str | None) -> str | None:
        """The value sealed under the first key (plaintext is sealed; sealed is rotated)."""
        if stored is None or stored == "":
            return stored
        if not stored.startswith(PREFIX):
            return self.seal(stored)
        try:
            return PREFIX + self._fernet.rotate(stored[len(PREFIX) :].encode("ascii")).decode("ascii")
        except InvalidToken:
            raise UndecryptableValue(f"a stored value is sealed under a key not in {KEY_VARIABLE}") from None

    def sealed_by_first_key(self, stored: str) -> bool:
        try:
            self._first.decrypt(stored[len(PREFIX) :].encode("ascii"))
            return True
        except InvalidToken:
            return False


class Plaintext:
    """No encryption: only for unit tests that build a ``Store`` by hand."""

    def seal(self, value: str | None) -> str | None:
        return value

    def open(self, stored: str | None) -> str | None:
        if stored is not None and stored.startswith(PREFIX):
            raise UndecryptableValue("a sealed value in a store opened without a key")
        return stored

    def reseal(self, stored: str | None) -> str | None:
        return stored


PLAINTEXT = Plaintext()


def keys_for(mode: str, configured: Sequence[str], data_dir: Path) -> list[str]:
    """The keys to use: the configured ones; in sandbox mode without any, the generated
    key file (made once, atomically, so web and worker starting together agree)."""
    if configured:
        return list(configured)
    if mode != "sandbox":
        raise KeyMissing(
            f"{KEY_VARIABLE} is required in live mode (generate one: python -m store.rekey --new-key)"
        )
    path = data_dir / KEY_FILE
    key = generated_secret(path, new_key)
    if not is_valid_key(key):
        raise KeyMissing(f"{path} does not hold a valid key; delete it or set {KEY_VARIABLE}")
    return [key]


def cipher_for(config) -> Cipher:
    """The cipher of a process, from its ``Config``; ``KeyMissing`` in live mode without a key."""
    return Cipher(keys_for(config.mode, config.encryption_keys, config.data_dir))


def seal_all(store, cipher: Cipher, *, rotate: bool = False) -> int:
    """Seal every plaintext secret in the store (and, with ``rotate``, re-seal every
    sealed one under the first key), in one transaction. Returns how many changed.

    Every process runs it at start (``rotate=False``: the migration of plaintext rows);
    ``python -m store.rekey`` runs it with ``rotate=True``. A sealed value no key opens
    raises ``UndecryptableValue`` and nothing is changed.
    """
    changed = 0
    checked = False  # one sealed value opened proves the keys; opening all would be slow
    with store.transaction() as conn:
        for table, key_column, columns in SEALED_COLUMNS:
            rows = conn.execute(f"SELECT {key_column}, {', '.join(columns)} FROM {table}").fetchall()
            for row in rows:
                updates = {}
                for column in columns:
                    value = row[column]
                    if value is None or value == "":
                        continue
                    if not value.startswith(PREFIX):
                        updates[column] = cipher.seal(value)
                    elif rotate and not cipher.sealed_by_first_key(value):
                        updates[column] = cipher.reseal(value)
                    elif not checked:
                        cipher.open(value)  # a value no key opens stops the start here
                        checked = True
                if updates:
                    assignments = ", ".join(f"{column} = :{column}" for column in updates)
                    conn.execute(
                        f"UPDATE {table} SET {assignments} WHERE {key_column} = :row_key",
                        {**updates, "row_key": row[key_column]},
                    )
                    changed += 1
    if changed:
        _scrub(store)
    return changed


def _scrub(store) -> None:
    """After plaintext was sealed: rewrite the file and empty the WAL, so the old bytes
    (moved cells, free pages, earlier WAL frames) do not stay on disk. Best effort: a
    reader of another process can keep the WAL from truncating; it goes at a later
    checkpoint. PostgreSQL: the old row versions go when autovacuum reclaims them."""
    if store.dialect != "sqlite":
        return
    from sqlalchemy.exc import OperationalError

    try:
        with store.engine.connect() as conn:
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    except OperationalError as ex:
        log.warning(
            "the store could not be compacted after sealing (%s); old bytes go at a later checkpoint", ex
        )


def open_store(config, **store_options):
    """The process's store: its cipher from ``config``, migrated, plaintext secrets sealed
    (``store_options`` go to ``Store``: web's short write budget, for one).

    Raises ``KeyMissing`` (live mode, no key) or ``UndecryptableValue`` (a stored value
    no configured key opens); the entry points turn both into one line and exit 78.
    """
    from store.database import Store

    cipher = cipher_for(config)
    store = Store(config.database_url, cipher, **store_options)
    store.migrate()
    seal_all(store, cipher)
    return store
