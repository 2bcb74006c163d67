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

Every write has one budget, ``write_timeout_s``, for the process lock and SQLite's
busy wait together: a Store that cannot get the database in that time raises
``sqlite3.OperationalError`` (which callers answer 503 ``STORE_UNAVAILABLE``) instead
of queueing behind a foreign lock. Web uses a short budget (``WEB_WRITE_TIMEOUT_S``) so
a locked store never holds its threads; the worker keeps ``BUSY_TIMEOUT_MS``.

Durability: WAL with ``synchronous=NORMAL``. A commit is in the WAL file when
``COMMIT`` returns, so it survives the process being killed (kill -9, a crash); the
WAL is fsynced at checkpoints, not at every commit, so a power cut or kernel crash can
lose the last commits before the latest checkpoint (never corrupt the database).
Web does not checkpoint (``auto_checkpoint=False``): the worker's commits do it.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from store.encryption import PLAINTEXT, Cipher, Plaintext

BUSY_TIMEOUT_MS = 5000
# Web answers a request that cannot write within this with 503 (issue 16: a foreign
# lock must not hold web's threads for the 5 s busy timeout).
WEB_WRITE_TIMEOUT_S = 0.4

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
    # Members and entitlements (issue 11).
    (
        200,
        "store.members",
        """
        CREATE TABLE IF NOT EXISTS members (
            member_id TEXT PRIMARY KEY,
            campaign_id TEXT NOT NULL,
            user_id TEXT,
            patron_status TEXT,
            last_charge_status TEXT,
            last_charge_date TEXT,
            next_charge_date TEXT,
            entitled_tier_ids TEXT NOT NULL DEFAULT '[]',
            entitled_amount_cents INTEGER NOT NULL DEFAULT 0,
            will_pay_amount_cents INTEGER,
            pledge_relationship_start TEXT,
            lifetime_support_cents INTEGER,
            is_free_trial INTEGER NOT NULL DEFAULT 0,
            is_gifted INTEGER NOT NULL DEFAULT 0,
            deleted INTEGER NOT NULL DEFAULT 0,
            email TEXT,
            full_name TEXT,
            source TEXT NOT NULL,
            source_at TEXT NOT NULL,
            sync_id INTEGER,
            event_id INTEGER
        );
        CREATE INDEX IF NOT EXISTS members_user ON members (user_id);
        CREATE INDEX IF NOT EXISTS members_campaign ON members (campaign_id, sync_id);
        """,
    ),
    (
        201,
        "store.tiers",
        """
        CREATE TABLE IF NOT EXISTS tiers (
            id TEXT PRIMARY KEY,
            campaign_id TEXT NOT NULL,
            title TEXT,
            amount_cents INTEGER NOT NULL DEFAULT 0,
            published INTEGER NOT NULL DEFAULT 0,
            deleted INTEGER NOT NULL DEFAULT 0,
            benefit_ids TEXT NOT NULL DEFAULT '[]',
            updated_at TEXT NOT NULL
        );
        CREATE TABLE IF NOT EXISTS benefits (
            id TEXT PRIMARY KEY,
            campaign_id TEXT NOT NULL,
            title TEXT,
            deleted INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL
        );
        """,
    ),
    (
        202,
        "store.member_refresh",
        """
        CREATE TABLE IF NOT EXISTS member_refresh (
            member_id TEXT PRIMARY KEY,
            campaign_id TEXT,
            event_id INTEGER,
            due_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX IF NOT EXISTS member_refresh_due ON member_refresh (due_at);
        """,
    ),
    (
        203,
        "store.member_sync",
        """
        CREATE TABLE IF NOT EXISTS member_syncs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            reason TEXT NOT NULL,
            requested_at TEXT NOT NULL,
            started_at TEXT,
            finished_at TEXT,
            pages INTEGER NOT NULL DEFAULT 0,
            members INTEGER NOT NULL DEFAULT 0,
            drift INTEGER NOT NULL DEFAULT 0,
            former INTEGER NOT NULL DEFAULT 0,
            error TEXT
        );
        """,
    ),
    # Issue 11: the member table (200) replaced the webhook-ordered member_state (11);
    # nothing reads or writes it any more.
    (
        210,
        "store.members",
        """
        DROP TABLE IF EXISTS member_state;
        """,
    ),
    # Access checks at 1,000/s (issue 11): change counters (store.generations) on the
    # tables the entitlement answers read, so web caches their rows per process and
    # re-reads them only after any process changed them. Sorts before 400, which
    # creates the same table IF NOT EXISTS, so it creates it too.
    (
        211,
        "store.generations",
        """
        CREATE TABLE IF NOT EXISTS table_generations (
            name TEXT PRIMARY KEY,
            generation INTEGER NOT NULL DEFAULT 0
        );
        INSERT OR IGNORE INTO table_generations (name, generation) VALUES ('members', 0);
        INSERT OR IGNORE INTO table_generations (name, generation) VALUES ('tiers', 0);
        INSERT OR IGNORE INTO table_generations (name, generation) VALUES ('benefits', 0);
        INSERT OR IGNORE INTO table_generations (name, generation) VALUES ('member_syncs', 0);
        CREATE TRIGGER IF NOT EXISTS members_insert_generation AFTER INSERT ON members BEGIN
            UPDATE table_generations SET generation = generation + 1 WHERE name = 'members';
        END;
        CREATE TRIGGER IF NOT EXISTS members_update_generation AFTER UPDATE ON members BEGIN
            UPDATE table_generations SET generation = generation + 1 WHERE name = 'members';
        END;
        CREATE TRIGGER IF NOT EXISTS members_delete_generation AFTER DELETE ON members BEGIN
            UPDATE table_generations SET generation = generation + 1 WHERE name = 'members';
        END;
        CREATE TRIGGER IF NOT EXISTS tiers_insert_generation AFTER INSERT ON tiers BEGIN
            UPDATE table_generations SET generation = generation + 1 WHERE name = 'tiers';
        END;
        CREATE TRIGGER IF NOT EXISTS tiers_update_generation AFTER UPDATE ON tiers BEGIN
            UPDATE table_generations SET generation = generation + 1 WHERE name = 'tiers';
        END;
        CREATE TRIGGER IF NOT EXISTS tiers_delete_generation AFTER DELETE ON tiers BEGIN
            UPDATE table_generations SET generation = generation + 1 WHERE name = 'tiers';
        END;
        CREATE TRIGGER IF NOT EXISTS benefits_insert_generation AFTER INSERT ON benefits BEGIN
            UPDATE table_generations SET generation = generation + 1 WHERE name = 'benefits';
        END;
        CREATE TRIGGER IF NOT EXISTS benefits_update_generation AFTER UPDATE ON benefits BEGIN
            UPDATE table_generations SET generation = generation + 1 WHERE name = 'benefits';
        END;
        CREATE TRIGGER IF NOT EXISTS benefits_delete_generation AFTER DELETE ON benefits BEGIN
            UPDATE table_generations SET generation = generation + 1 WHERE name = 'benefits';
        END;
        CREATE TRIGGER IF NOT EXISTS member_syncs_insert_generation AFTER INSERT ON member_syncs BEGIN
            UPDATE table_generations SET generation = generation + 1 WHERE name = 'member_syncs';
        END;
        CREATE TRIGGER IF NOT EXISTS member_syncs_update_generation AFTER UPDATE ON member_syncs BEGIN
            UPDATE table_generations SET generation = generation + 1 WHERE name = 'member_syncs';
        END;
        CREATE TRIGGER IF NOT EXISTS member_syncs_delete_generation AFTER DELETE ON member_syncs BEGIN
            UPDATE table_generations SET generation = generation + 1 WHERE name = 'member_syncs';
        END;
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
    # Performance (issue 17): a change counter per table, bumped by triggers, so a
    # process can cache a table's rows and re-read them only after any process changed
    # them. Owned by store.generations.
    (
        400,
        "store.generations",
        """
        CREATE TABLE IF NOT EXISTS table_generations (
            name TEXT PRIMARY KEY,
            generation INTEGER NOT NULL DEFAULT 0
        );
        INSERT OR IGNORE INTO table_generations (name, generation) VALUES ('webhook_secrets', 0);
        CREATE TRIGGER IF NOT EXISTS webhook_secrets_inserted AFTER INSERT ON webhook_secrets BEGIN
            UPDATE table_generations SET generation = generation + 1 WHERE name = 'webhook_secrets';
        END;
        CREATE TRIGGER IF NOT EXISTS webhook_secrets_updated AFTER UPDATE ON webhook_secrets BEGIN
            UPDATE table_generations SET generation = generation + 1 WHERE name = 'webhook_secrets';
        END;
        CREATE TRIGGER IF NOT EXISTS webhook_secrets_deleted AFTER DELETE ON webhook_secrets BEGIN
            UPDATE table_generations SET generation = generation + 1 WHERE name = 'webhook_secrets';
        END;
        """,
    ),
    # Several workers on one store (issue 13): leases (store.leases) so one worker at a
    # time runs the member sync, the event consumer, the token sweep and each token
    # refresh; rate slots (store.rate_slots) so every worker shares Patreon's budget.
    (
        500,
        "store.leases",
        """
        CREATE TABLE IF NOT EXISTS leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            expires_at REAL NOT NULL
        );
        CREATE TABLE IF NOT EXISTS rate_slots (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            window_key TEXT NOT NULL,
            sent_at REAL NOT NULL,
            done_at REAL
        );
        CREATE INDEX IF NOT EXISTS rate_slots_window ON rate_slots (window_key, sent_at);
        """,
    ),
]


def _statements(sql: str) -> list[str]:
    """A migration's statements; a trigger's body (``BEGIN ... ; END``) stays whole."""
    statements, current = [], ""
    for piece in sql.split(";"):
        current += piece + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n\t;"):
                statements.append(current)
            current = ""
    if current.strip(" \n\t;"):
        statements.append(current)
    return statements


_write_locks: dict[Path, threading.Lock] = {}
_write_locks_guard = threading.Lock()


def _write_lock(path: Path) -> threading.Lock:
    """One lock per database file, shared by every Store of this process on it."""
    with _write_locks_guard:
        return _write_locks.setdefault(path.resolve(), threading.Lock())


class Store:
    def __init__(
        self,
        path: Path,
        cipher: Cipher | None = None,
        *,
        write_timeout_s: float = BUSY_TIMEOUT_MS / 1000,
        auto_checkpoint: bool = True,
    ):
        self.path = Path(path)
        # Seals tokens and webhook secrets (store/encryption.py); the entry points pass
        # the configured one. None: plaintext, for unit tests that build a Store by hand.
        self.cipher: Cipher | Plaintext = cipher or PLAINTEXT
        self.write_timeout_s = write_timeout_s
        # False for web: a commit that crosses SQLite's checkpoint threshold would run the
        # checkpoint (and its fsyncs) inside that request; the worker, which commits
        # after every event it applies, keeps checkpointing for both.
        self.auto_checkpoint = auto_checkpoint
        self._local = threading.local()
        self._write_lock = _write_lock(self.path)

    def connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            busy_ms = self._busy_ms(self.write_timeout_s)
            conn = sqlite3.connect(self.path, timeout=busy_ms / 1000, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={busy_ms}")
            conn.execute("PRAGMA foreign_keys=ON")
            if not self.auto_checkpoint:
                conn.execute("PRAGMA wal_autocheckpoint=0")
            self._local.conn = conn
            self._local.busy_ms = busy_ms
        return conn

    @staticmethod
    def _busy_ms(seconds: float) -> int:
        return max(1, int(seconds * 1000))

    @contextlib.contextmanager
    def transaction(self, timeout_s: float | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction, taken at once (BEGIN IMMEDIATE) and committed on exit.

        Raises ``sqlite3.OperationalError`` when the process lock and the database
        cannot both be had within ``timeout_s`` (``write_timeout_s`` by default).
        """
        conn = self.connection()
        budget = self.write_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget
        if not self._write_lock.acquire(timeout=budget):
            raise sqlite3.OperationalError("database is locked (another writer of this process)")
        try:
            # SQLite's busy wait gets what is left of the budget (the full budget when
            # the process lock came at once, which saves setting it on every write).
            left = deadline - time.monotonic()
            busy_ms = self._busy_ms(budget if left > budget - 0.01 else left)
            if busy_ms != self._local.busy_ms:
                conn.execute(f"PRAGMA busy_timeout={busy_ms}")
                self._local.busy_ms = busy_ms
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                try:
                    conn.execute("COMMIT")
                except sqlite3.Error:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
        finally:
            self._write_lock.release()

    def migrate(self) -> int:
        """Apply pending migrations; safe to run from both processes at once."""
        # The full busy timeout: web and worker may start (and migrate) at once.
        with self.transaction(timeout_s=BUSY_TIMEOUT_MS / 1000) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            # Versions are reserved in ranges per issue and land in any order, so apply
            # every version not yet recorded (in version order), not just those above the max.
            applied = {row["version"] for row in conn.execute("SELECT version FROM schema_version")}
            for version, _owner, sql in sorted(MIGRATIONS):
                if version not in applied:
                    for statement in _statements(sql):
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
                    applied.add(version)
        return max(applied, default=0)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
