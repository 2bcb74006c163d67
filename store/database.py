"""The store: one database shared by every process, SQLite (one host) or PostgreSQL.

``DATABASE_URL`` picks the backend: ``sqlite:///PATH`` (the default, the file
``var/bridge.sqlite3``) or ``postgresql://USER:PASSWORD@HOST:PORT/DB`` (psycopg 3).
This module owns the connection discipline, the schema's migrations and the one
exception callers see when the store cannot answer (``StoreUnavailable``, answered
503 ``STORE_UNAVAILABLE`` with ``Retry-After`` by web). Each table has one owner
module that runs all of its queries.

Why SQLAlchemy Core + Alembic (with psycopg 3 underneath): one engine and connection
pool per process for both backends, the DBAPI errors of both mapped to one hierarchy
(so "the store is down" is one ``except``), SQL text with named parameters that runs
unchanged on both, and one Alembic migration history (``store/migrations``) whose
revisions say per dialect what differs (types, triggers). The ORM is not used: owner
modules keep writing their SQL. psycopg 3 is the maintained PostgreSQL driver.
A hand-written pool or migration runner for two dialects would be ours to keep right.
On SQLite, statements run on the sqlite3 driver under SQLAlchemy's connection (see
``Connection``): SQLAlchemy's per-statement cost was 6x sqlite3's and broke web's
write budget during a large member sync.

The API (what an owner module uses)::

    with store.read() as conn:            # a pooled connection; no write lock
        row = conn.execute("SELECT x FROM t WHERE id = :id", {"id": 1}).fetchone()
        row["x"]                          # rows are read by column name
    with store.transaction() as conn:     # one write transaction, committed on exit
        conn.execute("UPDATE t SET x = :x WHERE id = :id", {"x": 2, "id": 1}).rowcount
        conn.execute("INSERT INTO t (id, x) VALUES (:id, :x)", [{"id": 3, "x": 4}, ...])  # many

SQL must run on both: ``INSERT ... ON CONFLICT (key) DO UPDATE SET c = excluded.c``
(not ``INSERT OR REPLACE``), ``RETURNING id`` (not ``lastrowid``), ``CASE`` (not
SQLite's two-argument ``MIN``/``MAX``), no ``rowid``. ``conn.dialect`` is
``"sqlite"`` or ``"postgresql"`` for the rare statement that must differ.

Converting a table module written in the old style (``store.connection()``,
``conn.execute("... ?", (a, b))``, ``row[0]``, and a ``MIGRATIONS`` entry):

1. reads: ``with store.read() as conn:`` instead of ``conn = store.connection()``;
   writes keep ``with store.transaction() as conn:``;
2. ``?`` becomes ``:name`` and the tuple a dict (a list of dicts for executemany);
   ``row[0]`` becomes ``row["name"]`` (give the column an ``AS name``);
3. SQLite-only SQL becomes the portable form above;
4. ``except sqlite3.Error`` becomes ``except StoreError`` (``StoreUnavailable`` for
   "answer 503 and retry");
5. the ``MIGRATIONS`` entry becomes an Alembic revision in ``store/migrations/versions``
   (``NNNN_what.py`` in the shape of ``script.py.mako``: ``revision = "NNNN"``,
   ``down_revision`` = the current head, the owner module named in its docstring),
   with ``op.create_table``/``op.create_index`` or ``CREATE TABLE IF NOT EXISTS`` text
   that runs on both (IF NOT EXISTS also covers a SQLite file that already ran the old
   entry); the entry leaves ``MIGRATIONS`` (tests/unit/test_store_migrations.py refuses
   new entries there);
6. run the module's tests against both backends (the ``store`` fixture does).

SQLite (one host): one connection per thread, kept (reads in autocommit see the
thread's own open write transaction). WAL mode lets every process read while one writes. Writers of one
process take turns on a process-wide lock before ``BEGIN IMMEDIATE``: SQLite's own
busy handler retries with sleeps that grow to 100 ms, so many threads contending
inside SQLite see waits of seconds (measured: 2.1 s with 96 writer threads, 0.29 s
with the lock). Writers of other processes still meet the ``busy_timeout``. Every write
has one budget, ``write_timeout_s``, for the process lock and SQLite's busy wait
together: a Store that cannot get the database in that time raises
``StoreUnavailable`` instead of queueing behind a foreign lock. Web uses a short
budget (``WEB_WRITE_TIMEOUT_S``) so a locked store never holds its threads; the worker
keeps ``BUSY_TIMEOUT_MS``. Durability: WAL with ``synchronous=NORMAL``: a commit is in
the WAL when ``COMMIT`` returns, so it survives kill -9; a power cut can lose the last
commits before the latest checkpoint (never corrupt the file). Web does not
checkpoint (``auto_checkpoint=False``): the worker's commits do it.

PostgreSQL (several hosts): no process lock (PostgreSQL locks rows); the write budget
is the pool's checkout wait (``pool_timeout_s``) plus ``lock_timeout`` and
``statement_timeout`` set on every connection, so web (small values from its
settings) answers 503 fast when the server is down, the pool is exhausted or a
statement hangs. ``pool_pre_ping`` replaces connections a server restart closed.

Migrations run at start in every program that opens the store (web, worker, live,
``store.rekey``, ``store.copy``): each takes the migration lock first, so two
processes or hosts starting at once apply each revision once. SQLite: the write
lock (``BEGIN IMMEDIATE``); PostgreSQL: ``pg_advisory_xact_lock`` around
``alembic upgrade head`` in one transaction (PostgreSQL's DDL is transactional).
A SQLite file from before Alembic (a ``schema_version`` table, the frozen
``MIGRATIONS`` list below) is upgraded in place: the legacy entries it lacks are
applied, then it is stamped at the baseline revision (``0001``) and upgraded.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import QueuePool

from store.encryption import PLAINTEXT, Cipher, Plaintext

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
# Web answers a request that cannot write within this with 503 (issue 16: a foreign
# lock must not hold web's threads for the 5 s busy timeout).
WEB_WRITE_TIMEOUT_S = 0.4
# PostgreSQL: connections per process, and how long a statement may run (web sets
# smaller values from its settings).
DEFAULT_POOL_SIZE = 10
DEFAULT_STATEMENT_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 2  # libpq's minimum that is honoured
# pg_advisory_xact_lock keys (any 64-bit numbers, fixed forever).
MIGRATION_LOCK = 0x5042_0001
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BASELINE_REVISION = "0001"


class StoreError(Exception):
    """A store operation failed; nothing of its transaction was kept."""


class StoreUnavailable(StoreError):
    """The store cannot answer now (locked or busy, down, pool exhausted, a statement
    timed out): retry later. Web answers 503 ``STORE_UNAVAILABLE`` with Retry-After."""


# (version, owner module, SQL): the pre-Alembic migrations, frozen at the Alembic baseline
# (store/migrations/versions/0001_baseline.py creates the same schema).
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
]


# The frozen pre-Alembic history: what a SQLite file built before Alembic may lack is
# applied from here before it is stamped at the baseline revision. Append nothing:
# a new table is an Alembic revision (see the recipe above).
LEGACY_VERSIONS = frozenset(version for version, _owner, _sql in MIGRATIONS)


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


def sqlite_url(path: Path | str) -> str:
    return f"sqlite:///{Path(path).resolve()}"


@lru_cache(maxsize=4096)
def _text(sql: str) -> sqlalchemy.TextClause:
    return sqlalchemy.text(sql)


class Rows:
    """A statement's result: rows by column name (``row["id"]``), and ``rowcount``."""

    __slots__ = ("_result",)

    def __init__(self, result: sqlalchemy.CursorResult):
        self._result = result

    @property
    def rowcount(self) -> int:
        return self._result.rowcount

    def fetchone(self) -> Mapping[str, Any] | None:
        row = self._result.fetchone()
        return None if row is None else row._mapping

    def fetchall(self) -> list[Mapping[str, Any]]:
        return [row._mapping for row in self._result.fetchall()]

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return iter(self.fetchall())

    def scalar(self) -> Any:
        return self._result.scalar()


class _SqliteRows:
    """``Rows`` of a statement run on the sqlite3 driver itself (rows are ``sqlite3.Row``)."""

    __slots__ = ("_cursor",)

    def __init__(self, cursor: sqlite3.Cursor):
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> sqlite3.Row | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[sqlite3.Row]:
        return self._cursor.fetchall()

    def __iter__(self) -> Iterator[sqlite3.Row]:
        return iter(self._cursor.fetchall())

    def scalar(self) -> Any:
        row = self._cursor.fetchone()
        return None if row is None else row[0]


class Connection:
    """One connection: ``execute(sql, params)`` with ``:name`` parameters; rows by
    column name. ``sa`` is the SQLAlchemy connection, for what the thin API does not
    cover.

    On SQLite a statement runs on the sqlite3 driver under SQLAlchemy's connection (same
    transaction; sqlite3 takes ``:name`` itself): SQLAlchemy's own execution costs about
    40 us a statement against sqlite3's 7 (measured, one insert), which made a sync
    page's transaction (1,000 members) hold the write lock past web's 0.4 s budget."""

    __slots__ = ("_raw", "dialect", "sa")

    def __init__(self, conn: sqlalchemy.Connection):
        self.sa = conn
        self.dialect = conn.dialect.name
        self._raw = conn.connection.driver_connection if self.dialect == "sqlite" else None

    def execute(
        self, sql: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    ) -> Rows | _SqliteRows:
        if self._raw is None:
            return Rows(self.sa.execute(_text(sql), params if params is not None else {}))
        cursor = self._raw.cursor()
        cursor.row_factory = sqlite3.Row
        if isinstance(params, list):
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params if params is not None else {})
        return _SqliteRows(cursor)


_UNAVAILABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, sa_exc.DisconnectionError)


@contextlib.contextmanager
def translated_errors() -> Iterator[None]:
    """SQLAlchemy's errors as the store's: ``StoreUnavailable`` for "cannot answer
    now", ``StoreError`` for the rest (a constraint, a bad statement)."""
    try:
        yield
    except _UNAVAILABLE as ex:
        raise StoreUnavailable(_reason(ex)) from ex
    except sa_exc.SQLAlchemyError as ex:
        raise StoreError(_reason(ex)) from ex
    except sqlite3.OperationalError as ex:  # a statement run on the driver itself
        raise StoreUnavailable(str(ex)) from ex
    except sqlite3.Error as ex:
        raise StoreError(str(ex)) from ex


def _reason(ex: sa_exc.SQLAlchemyError) -> str:
    # The driver's message without SQLAlchemy's statement and parameters (which may
    # hold a token or an email: never logged).
    orig = getattr(ex, "orig", None)
    return str(orig if orig is not None else ex).strip().splitlines()[0][:300]


_store_numbers = itertools.count(1)
_write_locks: dict[str, threading.Lock] = {}
_write_locks_guard = threading.Lock()


def _write_lock(key: str) -> threading.Lock:
    """One lock per SQLite file, shared by every Store of this process on it."""
    with _write_locks_guard:
        return _write_locks.setdefault(key, threading.Lock())


class Store:
    def __init__(
        self,
        url: str | Path,
        cipher: Cipher | None = None,
        *,
        write_timeout_s: float = BUSY_TIMEOUT_MS / 1000,
        auto_checkpoint: bool = True,
        pool_size: int = DEFAULT_POOL_SIZE,
        pool_timeout_s: float | None = None,
        statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
    ):
        """``url``: a ``DATABASE_URL`` (``sqlite:///...``, ``postgresql://...``) or a
        SQLite file's path (unit tests)."""
        self.url = url if isinstance(url, str) and "://" in url else sqlite_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self.dialect!r} (sqlite or postgresql)")
        # Seals tokens and webhook secrets (store/encryption.py); the entry points pass
        # the configured one. None: plaintext, for unit tests that build a Store by hand.
        self.cipher: Cipher | Plaintext = cipher or PLAINTEXT
        self.write_timeout_s = write_timeout_s
        # False for web: a commit that crosses SQLite's checkpoint threshold would run the
        # checkpoint (and its fsyncs) inside that request; the worker, which commits
        # after every event it applies, keeps checkpointing for both.
        self.auto_checkpoint = auto_checkpoint
        self.path: Path | None = None
        self._local = threading.local()
        if self.dialect == "sqlite":
            self.path = Path(parsed.database).resolve()
            self._write_lock: threading.Lock | None = _write_lock(str(self.path))
            self.engine = self._sqlite_engine(parsed, pool_size)
        else:
            self._write_lock = None
            self.engine = self._postgresql_engine(
                parsed, pool_size, write_timeout_s if pool_timeout_s is None else pool_timeout_s, statement_timeout_s
            )
        # The group committer's key (store.group_commit): one per SQLite file of this
        # process, whose Stores share its write lock; one per Store on PostgreSQL, whose
        # writers need no process-wide turn-taking.
        self.key = str(self.path) if self.path is not None else f"{self.url}#{next(_store_numbers)}"

    # -- engines --------------------------------------------------------------------
    def _sqlite_engine(self, url, pool_size: int) -> sqlalchemy.Engine:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        busy_ms = _busy_ms(self.write_timeout_s)
        # Connections are cheap and SQLite has no server limit: as many as threads want
        # (what the per-thread connections of before gave), kept for reuse.
        engine = sqlalchemy.create_engine(
            url,
            poolclass=QueuePool,
            pool_size=max(pool_size, 32),
            max_overflow=-1,
            connect_args={"timeout": busy_ms / 1000, "check_same_thread": False},
        )
        auto_checkpoint = self.auto_checkpoint

        @event.listens_for(engine, "connect")
        def _configure(dbapi_conn, record) -> None:
            # The driver must not open transactions on its own: transaction() says
            # BEGIN IMMEDIATE, and reads run in autocommit, as they always did.
            dbapi_conn.isolation_level = None
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", f"busy_timeout={busy_ms}", "foreign_keys=ON"):
                dbapi_conn.execute(f"PRAGMA {pragma}")
            if not auto_checkpoint:
                dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")
            record.info["busy_ms"] = busy_ms

        return engine

    def _postgresql_engine(
        self, url, pool_size: int, pool_timeout_s: float, statement_timeout_s: float
    ) -> sqlalchemy.Engine:
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        lock_ms = max(1, int(self.write_timeout_s * 1000))
        statement_ms = max(1, int(statement_timeout_s * 1000))
        return sqlalchemy.create_engine(
            url,
            pool_size=pool_size,
            max_overflow=0,  # the pool is the limit: exhausted means 503, not a new connection
            pool_timeout=pool_timeout_s,
            pool_pre_ping=True,
            connect_args={
                "connect_timeout": CONNECT_TIMEOUT_S,
                "options": f"-c statement_timeout={statement_ms} -c lock_timeout={lock_ms}",
                "application_name": "patreon-bridge",
            },
        )

    # -- connections ----------------------------------------------------------------
    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads. SQLite: this thread's own connection, in autocommit
        (inside this thread's write transaction it sees that transaction's writes);
        PostgreSQL: a pooled connection, one read transaction rolled back on exit."""
        if self._write_lock is not None:
            with translated_errors():
                yield self._thread_connection()
            return
        with translated_errors(), self.engine.connect() as conn:
            yield Connection(conn)

    def _thread_connection(self) -> Connection:
        """SQLite: one connection per thread, kept (as sqlite3 connections always were
        here): no pool checkout and return on every statement."""
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.sa.closed or conn.sa.invalidated:
            conn = self._local.conn = Connection(self.engine.connect())
        return conn

    @contextlib.contextmanager
    def transaction(self, timeout_s: float | None = None) -> Iterator[Connection]:
        """A write transaction, committed on exit (rolled back on an exception).

        Raises ``StoreUnavailable`` when the store cannot be had within ``timeout_s``
        (``write_timeout_s`` by default; SQLite: the process lock and the database
        together).
        """
        if self._write_lock is None:
            with translated_errors(), self.engine.connect() as conn:
                with conn.begin():
                    yield Connection(conn)
            return
        budget = self.write_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + budget
        if not self._write_lock.acquire(timeout=budget):
            raise StoreUnavailable("database is locked (another writer of this process)")
        try:
            with translated_errors():
                wrapped = self._thread_connection()
                conn = wrapped.sa
                # SQLite's busy wait gets what is left of the budget (the full budget when
                # the process lock came at once, which saves setting it on every write).
                left = deadline - time.monotonic()
                busy_ms = _busy_ms(budget if left > budget - 0.01 else left)
                if busy_ms != conn.info.get("busy_ms"):
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={busy_ms}")
                    conn.info["busy_ms"] = busy_ms
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                try:
                    yield wrapped
                    conn.commit()
                except BaseException:
                    conn.rollback()  # also after a failed COMMIT: the connection stays this thread's
                    raise
        finally:
            self._write_lock.release()

    # -- the schema -----------------------------------------------------------------
    def migrate(self) -> str:
        """Bring the schema to the newest revision; safe when several processes (or
        hosts) run it at once. Returns the revision."""
        if self.dialect == "sqlite":
            # The full busy timeout: web and worker may start (and migrate) at once.
            with self.transaction(timeout_s=BUSY_TIMEOUT_MS / 1000) as conn:
                return _upgrade(conn.sa)
        with translated_errors(), self.engine.connect() as conn:
            with conn.begin():
                # Wait for another host's migration, however long it takes.
                conn.exec_driver_sql("SET LOCAL lock_timeout = 0")
                conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
                conn.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
                return _upgrade(conn)

    def revision(self) -> str | None:
        with self.read() as conn:
            from alembic.runtime.migration import MigrationContext

            return MigrationContext.configure(conn.sa).get_current_revision()

    def close(self) -> None:
        """Close this thread's connection and the pool's (tests; a process just exits)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.sa.close()
            self._local.conn = None
        self.engine.dispose()


def _busy_ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def _alembic_config(conn: sqlalchemy.Connection):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn  # store/migrations/env.py runs on it
    return config


def _upgrade(conn: sqlalchemy.Connection) -> str:
    """``alembic upgrade head`` on ``conn`` (inside the caller's transaction), after
    converting a pre-Alembic SQLite file."""
    # Alembic narrates every start at INFO (its context, plugins); one line of ours says
    # what changed.
    if _at_head(conn):
        # The usual start: nothing to do, and Alembic (12 MB of modules) stays unloaded.
        return HEAD_REVISION
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    tables = set(sqlalchemy.inspect(conn).get_table_names())
    config = _alembic_config(conn)
    before = MigrationContext.configure(conn).get_current_revision()
    if "schema_version" in tables and "alembic_version" not in tables:
        _finish_legacy(conn)
        command.stamp(config, BASELINE_REVISION)
        log.info("store: a pre-Alembic SQLite file, converted and stamped at %s", BASELINE_REVISION)
    command.upgrade(config, "head")
    after = MigrationContext.configure(conn).get_current_revision() or ""
    if after != before:
        log.info("store migrated from revision %s to %s", before or "(empty)", after)
    return after


def _head_revision() -> str:
    """The newest revision, by the versions folder's naming rule (``NNNN_what.py``,
    ``revision = "NNNN"``; tests/unit/test_store_migrations.py checks it against
    Alembic's own answer), read without importing Alembic."""
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS_DIR / "versions").glob("[0-9]*_*.py"))


HEAD_REVISION = _head_revision()


def _at_head(conn: sqlalchemy.Connection) -> bool:
    if not sqlalchemy.inspect(conn).has_table("alembic_version"):
        return False
    return [row[0] for row in conn.exec_driver_sql("SELECT version_num FROM alembic_version")] == [HEAD_REVISION]


def _finish_legacy(conn: sqlalchemy.Connection) -> None:
    """Apply the legacy migrations a pre-Alembic file lacks (versions are reserved in
    ranges and landed in any order: every one not yet recorded, in version order)."""
    applied = {row[0] for row in conn.exec_driver_sql("SELECT version FROM schema_version")}
    for version, _owner, sql in sorted(MIGRATIONS):
        if version not in applied:
            for statement in _statements(sql):
                conn.exec_driver_sql(statement)
            conn.exec_driver_sql(f"INSERT INTO schema_version (version) VALUES ({int(version)})")
