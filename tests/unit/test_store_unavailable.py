""""The store cannot answer now" is one exception, ``StoreUnavailable``, whatever the
cause: SQLite locked, PostgreSQL down, its pool exhausted, a statement timed out
(web answers it 503 STORE_UNAVAILABLE). Real SQLite files and the throw-away
PostgreSQL cluster; no timing is asserted."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from harness.stack import free_port
from store.database import Store, StoreError, StoreUnavailable


def test_sqlite_locked_by_another_process_is_unavailable(tmp_path):
    store = Store(tmp_path / "bridge.sqlite3", write_timeout_s=0.1)
    store.migrate()
    foreign = sqlite3.connect(store.path, isolation_level=None)
    foreign.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable, match="locked"), store.transaction() as conn:
            conn.execute("DELETE FROM sessions")
    finally:
        foreign.execute("ROLLBACK")


def test_postgresql_down_is_unavailable():
    store = Store(f"postgresql://postgres@127.0.0.1:{free_port()}/none", write_timeout_s=0.2)
    with pytest.raises(StoreUnavailable), store.read() as conn:
        conn.execute("SELECT 1 AS one")
    store.close()


def test_a_statement_past_statement_timeout_is_unavailable(postgres_unit_url):
    store = Store(postgres_unit_url, statement_timeout_s=0.1)
    with pytest.raises(StoreUnavailable, match="statement timeout"), store.read() as conn:
        conn.execute("SELECT pg_sleep(5) AS slept")
    with store.read() as conn:  # the connection is fine for the next statement
        assert conn.execute("SELECT 1 AS one").scalar() == 1
    store.close()


def test_an_exhausted_pool_is_unavailable(postgres_unit_url):
    store = Store(postgres_unit_url, pool_size=1, pool_timeout_s=0.1)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.read() as conn:
            conn.execute("SELECT 1 AS one")
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        with pytest.raises(StoreUnavailable, match="QueuePool limit"), store.read():
            pass
    finally:
        release.set()
        holder.join(10)
    store.close()


def test_a_constraint_is_a_store_error_not_unavailable(store):
    insert = "INSERT INTO webhook_secrets (webhook_id, secret, created_at) VALUES ('w', 's', 0)"
    with store.transaction() as conn:
        conn.execute(insert)
    with pytest.raises(StoreError) as raised, store.transaction() as conn:
        conn.execute(insert)
    assert not isinstance(raised.value, StoreUnavailable)
