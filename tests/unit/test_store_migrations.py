"""The store's one migration history (Alembic, store/migrations): a fresh store, a SQLite
file built by the pre-Alembic migrations (upgraded in place with its data), and the
frozen legacy list."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy

from store import leases, webhook_events, webhook_secrets
from store.database import (
    BASELINE_REVISION,
    HEAD_REVISION,
    MIGRATIONS,
    MIGRATIONS_DIR,
    Store,
    StoreError,
    _statements,
)
from store.generations import generation
from tests.webhook_deliveries import encode, member_document

# What the pre-Alembic list held when it was frozen: entries added since must become
# Alembic revisions (the recipe in store/database.py's docstring).
FROZEN = {1, 2, 3, 4, 10, 11, 100, 200, 201, 202, 203, 300, 400}
# Legacy entries that shipped on main before they became revisions (0003-0005): a file
# may hold them; the revisions are idempotent.


def legacy_store(path: Path, *, skip: frozenset[int] = frozenset()) -> None:
    """A SQLite file exactly as the old ``Store.migrate`` built it (minus ``skip``),
    with rows in it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    for version, _owner, sql in sorted(MIGRATIONS):
        if version in skip:
            continue
        for statement in _statements(sql):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))
    conn.execute(
        "INSERT INTO webhook_events (event, body, dedupe_key, received_at) VALUES (?, ?, ?, 'then')",
        (
            "members:create",
            encode(member_document("m-old")),
            webhook_events.dedupe_key(encode(member_document("m-old"))),
        ),
    )
    conn.execute("INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES ('s', '7', 0, 1e12)")
    conn.execute("INSERT INTO webhook_secrets VALUES ('hook', 'secret', 0)")
    conn.execute("COMMIT")
    conn.close()


def columns(url: str) -> dict[str, list[str]]:
    engine = sqlalchemy.create_engine(url)
    try:
        inspector = sqlalchemy.inspect(engine)
        return {
            table: sorted(c["name"] for c in inspector.get_columns(table))
            for table in inspector.get_table_names()
            if table not in ("schema_version", "alembic_version")
        }
    finally:
        engine.dispose()


def test_the_head_read_without_alembic_is_alembics_head():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert HEAD_REVISION == ScriptDirectory.from_config(config).get_current_head()


def test_a_store_at_the_head_migrates_without_loading_alembic(tmp_path):
    """What every start of a migrated store does: 12 MB of Alembic stay out of the process."""
    Store(tmp_path / "s.sqlite3").migrate()
    probe = (
        "import sys; from store.database import Store; "
        f"print(Store({str(tmp_path / 's.sqlite3')!r}).migrate(), any(m.startswith('alembic') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == [HEAD_REVISION, "False"]


def test_the_legacy_list_is_frozen():
    added = {version for version, _owner, _sql in MIGRATIONS} - FROZEN
    assert not added, f"port MIGRATIONS {sorted(added)} to Alembic revisions (store/database.py's recipe)"


def test_a_fresh_store_and_a_converted_legacy_file_end_with_the_same_tables_and_columns(tmp_path):
    legacy_store(tmp_path / "old.sqlite3")
    converted = Store(tmp_path / "old.sqlite3")
    fresh = Store(tmp_path / "new.sqlite3")
    assert fresh.migrate() == converted.migrate() == fresh.revision()
    assert columns(fresh.url) == columns(converted.url)
    with fresh.read() as a, converted.read() as b:
        triggers = "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
        assert [r["name"] for r in a.execute(triggers)] == [r["name"] for r in b.execute(triggers)]


def test_a_legacy_file_is_upgraded_in_place_with_its_data(tmp_path):
    # 400 (the generation triggers) missing too: the legacy entries a file lacks are
    # applied before it is stamped at the baseline.
    legacy_store(tmp_path / "bridge.sqlite3", skip=frozenset({400}))
    store = Store(tmp_path / "bridge.sqlite3")
    head = store.migrate()
    assert head and store.revision() == head
    with store.read() as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").scalar() == head
        assert 400 in {r["version"] for r in conn.execute("SELECT version FROM schema_version")}
    # The old rows are all there and the log goes on after them.
    assert webhook_events.counts(store)["total"] == 1
    assert webhook_events.accept(store, "members:create", encode(member_document("m-old"))) == (1, True)
    assert webhook_events.accept(store, "members:create", encode(member_document("m-new"))) == (2, False)
    assert webhook_secrets.known_ids(store) == {"hook"}
    before = generation(store, "webhook_secrets")
    webhook_secrets.save(store, "hook-2", "s2")
    assert generation(store, "webhook_secrets") == before + 1
    assert store.migrate() == head  # idempotent


def test_a_legacy_file_at_the_baseline_is_only_stamped(tmp_path):
    legacy_store(tmp_path / "bridge.sqlite3")
    store = Store(tmp_path / "bridge.sqlite3")
    store.migrate()
    with store.read() as conn:
        assert conn.execute("SELECT COUNT(*) AS n FROM sessions").scalar() == 1
    assert BASELINE_REVISION <= store.revision()


def test_two_stores_migrating_at_once_apply_each_revision_once(tmp_path):
    path = tmp_path / "bridge.sqlite3"
    results, errors = [], []
    start = threading.Barrier(4)

    def migrate() -> None:
        start.wait()
        try:
            results.append(Store(path).migrate())
        except Exception as ex:
            errors.append(ex)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(results)) == 1


def test_the_dedupe_key_is_unique_in_the_schema(store):
    insert = "INSERT INTO webhook_events (event, body, dedupe_key, received_at) VALUES (:e, :b, 'k', 'now')"
    with store.transaction() as conn:
        conn.execute(insert, {"e": "a", "b": b""})
    with pytest.raises(StoreError), store.transaction() as conn:
        conn.execute(insert, {"e": "b", "b": b""})
    assert webhook_events.counts(store)["total"] == 1


def test_a_legacy_file_that_ran_210_211_and_500_converts_keeping_its_rows_without_doubling_anything(tmp_path):
    # Legacy migrations 210 and 211 shipped on main before they became revisions 0003
    # and 0004: a file that ran them must convert cleanly (IF EXISTS / IF NOT EXISTS).
    path = tmp_path / "bridge.sqlite3"
    legacy_store(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TABLE IF EXISTS member_state")
    conn.execute("INSERT OR IGNORE INTO table_generations (name, generation) VALUES ('members', 0)")
    conn.execute(
        "CREATE TRIGGER IF NOT EXISTS members_insert_generation AFTER INSERT ON members BEGIN"
        " UPDATE table_generations SET generation = generation + 1 WHERE name = 'members'; END"
    )
    conn.execute(
        "CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at REAL NOT NULL)"
    )
    conn.execute("INSERT INTO leases VALUES ('member-sync', 'host/worker_00/x', 1e12)")
    conn.executemany("INSERT INTO schema_version (version) VALUES (?)", [(210,), (211,), (500,)])
    conn.close()
    store = Store(path)
    store.migrate()
    before = generation(store, "members")
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO members (member_id, campaign_id, source, source_at) VALUES ('m', '1', 'sync', 'now')"
        )
    assert generation(store, "members") == before + 1
    assert leases.get(store, "member-sync").holder == "host/worker_00/x"
