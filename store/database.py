"""The store: one SQLite database in WAL mode, shared by web and worker.

This module owns the connection discipline and the schema (a list of migrations,
applied in order and recorded in ``schema_version``). Each table has one owner
module that runs all of its queries; the owner is named next to each migration.

SQLite in WAL mode lets both processes read while one writes. Connections are per
thread (sqlite3 objects are not shared). Writers of one process take turns on a
process-wide lock before ``BEGIN IMMEDIATE``: SQLite's own busy handler retries with
sleeps that grow to 100 ms, so many threads contending inside SQLite see waits of
seconds (measured: 2.1 s with 96 writer threads, 0.29 s with the lock). Writers of the
other process still meet the ``busy_timeout``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from store.encryption import PLAINTEXT, Cipher, Plaintext

BUSY_TIMEOUT_MS = 5000

# (version, owner module, SQL). Append only: never edit a migration that has shipped.
MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "store.database",
        """
        CREATE TABLE IF NOT EXISTS kv (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        """,
    ),
    # Login and API reads.
    (
        2,
        "store.tokens",
        """
        CREATE TABLE IF NOT EXISTS tokens (
            principal TEXT PRIMARY KEY,
            access_token TEXT NOT NULL,
            refresh_token TEXT,
            expires_at REAL,
            scope TEXT NOT NULL DEFAULT '',
            token_type TEXT NOT NULL DEFAULT 'Bearer',
            patreon_user_id TEXT,
            seed TEXT,
            updated_at REAL NOT NULL
        );
        """,
    ),
    (
        3,
        "store.webhook_secrets",
        """
        CREATE TABLE IF NOT EXISTS webhook_secrets (
            webhook_id TEXT PRIMARY KEY,
            secret TEXT NOT NULL,
            created_at REAL NOT NULL
        );
        """,
    ),
    (
        4,
        "web.sessions",
        """
        CREATE TABLE IF NOT EXISTS sessions (
            id TEXT PRIMARY KEY,
            user_id TEXT,
            campaign_ids TEXT NOT NULL DEFAULT '[]',
            created_at REAL NOT NULL,
            expires_at REAL NOT NULL
        );
        CREATE INDEX IF NOT EXISTS sessions_expiry ON sessions (expires_at);
        CREATE TABLE IF NOT EXISTS oauth_states (
            state TEXT PRIMARY KEY,
            session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
            redirect_uri TEXT NOT NULL,
            scopes TEXT NOT NULL,
            expires_at REAL NOT NULL
        );
        CREATE INDEX IF NOT EXISTS oauth_states_session ON oauth_states (session_id);
        CREATE INDEX IF NOT EXISTS oauth_states_expiry ON oauth_states (expires_at);
        """,
    ),
    # Webhooks.
    (
        10,
        "store.webhook_events",
        """
        CREATE TABLE IF NOT EXISTS webhook_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            event TEXT NOT NULL,
            body BLOB NOT NULL,
            dedupe_key TEXT NOT NULL UNIQUE,
            campaign_id TEXT,
            received_at TEXT NOT NULL,
            processed_at TEXT,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT
        );
        CREATE INDEX IF NOT EXISTS webhook_events_unprocessed
            ON webhook_events (id) WHERE processed_at IS NULL;
        CREATE INDEX IF NOT EXISTS webhook_events_campaign ON webhook_events (campaign_id, id);
        """,
    ),
    (
        11,
        "store.member_state",
        """
        CREATE TABLE IF NOT EXISTS member_state (
            member_id TEXT PRIMARY KEY,
            campaign_id TEXT,
            user_id TEXT,
            patron_status TEXT,
            last_charge_status TEXT,
            entitled_tier_ids TEXT NOT NULL DEFAULT '[]',
            currently_entitled_amount_cents INTEGER,
            will_pay_amount_cents INTEGER,
            deleted INTEGER NOT NULL DEFAULT 0,
            last_event TEXT NOT NULL,
            last_event_id INTEGER NOT NULL,
            last_event_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX IF NOT EXISTS member_state_campaign ON member_state (campaign_id);
        """,
    ),
    # The layout (issue 10): migration 1's kv table was never read or written.
    (
        100,
        "store.database",
        """
        DROP TABLE IF EXISTS kv;
        """,
    ),
    # Hardening (issue 16): a login start writes no session row, so a state is bound to
    # the cookie value it was issued to (``session_id``), which need not be a session's
    # id: the foreign key goes. Pending states are kept.
    (
        300,
        "web.sessions",
        """
        CREATE TABLE oauth_states_300 (
            state TEXT PRIMARY KEY,
            session_id TEXT NOT NULL,
            redirect_uri TEXT NOT NULL,
            scopes TEXT NOT NULL,
            expires_at REAL NOT NULL
        );
        INSERT INTO oauth_states_300 (state, session_id, redirect_uri, scopes, expires_at)
            SELECT state, session_id, redirect_uri, scopes, expires_at FROM oauth_states;
        DROP TABLE oauth_states;
        ALTER TABLE oauth_states_300 RENAME TO oauth_states;
        CREATE INDEX IF NOT EXISTS oauth_states_session ON oauth_states (session_id);
        CREATE INDEX IF NOT EXISTS oauth_states_expiry ON oauth_states (expires_at);
        """,
    ),
]


_write_locks: dict[Path, threading.Lock] = {}
_write_locks_guard = threading.Lock()


def _write_lock(path: Path) -> threading.Lock:
    """One lock per database file, shared by every Store of this process on it."""
    with _write_locks_guard:
        return _write_locks.setdefault(path.resolve(), threading.Lock())


class Store:
    def __init__(self, path: Path, cipher: Cipher | None = None):
        self.path = Path(path)
        # Seals tokens and webhook secrets (store/encryption.py); the entry points pass
        # the configured one. None: plaintext, for unit tests that build a Store by hand.
        self.cipher: Cipher | Plaintext = cipher or PLAINTEXT
        self._local = threading.local()
        self._write_lock = _write_lock(self.path)

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction, taken at once (BEGIN IMMEDIATE) and committed on exit."""
        conn = self.connection()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def migrate(self) -> int:
        """Apply pending migrations; safe to run from both processes at once."""
        with self.transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            # Versions are reserved in ranges per issue and land in any order, so apply
            # every version not yet recorded (in version order), not just those above the max.
            applied = {row["version"] for row in conn.execute("SELECT version FROM schema_version")}
            for version, _owner, sql in sorted(MIGRATIONS):
                if version not in applied:
                    for statement in filter(str.strip, sql.split(";")):
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                    applied.add(version)
        return max(applied, default=0)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
