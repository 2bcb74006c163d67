"""``python -m store.copy``: a SQLite store's rows into an empty PostgreSQL store, on
the throw-away cluster (harness/postgres.py)."""

from __future__ import annotations

from store import copy as store_copy
from store import member_sync, members, tokens, webhook_events, webhook_secrets
from store.database import Store
from store.members import MemberRecord
from tests.unit.test_store_migrations import legacy_store
from tests.webhook_deliveries import encode, member_document
from web.sessions import SessionStore


def filled_sqlite(path) -> Store:
    store = Store(path)
    store.migrate()
    for n in range(1, 6):
        webhook_events.accept(store, "members:create", encode(member_document(f"m-{n}")))
    webhook_secrets.save(store, "hook-1", "secret-1")
    with store.transaction() as conn:
        members.put_in(
            conn,
            MemberRecord("m-1", "1001", "7", "active_patron", entitled_tier_ids=("3001",)),
            source=members.SYNC,
            source_at="2026-01-01T00:00:00.000Z",
        )
    member_sync.request(store, "test", "2026-01-01T00:00:00.000Z")
    session = SessionStore(store).login(None, "S" * 43, "7", ["1001"])
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO tokens (principal, access_token, refresh_token, updated_at) VALUES (:p, 'a', 'r', 1)",
            {"p": tokens.session_principal(session.id)},
        )
    return store


def test_a_sqlite_store_is_copied_whole_and_the_copy_carries_on(tmp_path, postgres, capsys):
    source = filled_sqlite(tmp_path / "bridge.sqlite3")
    url = postgres.create_database("copy_target")
    assert store_copy.main(["--from", source.url, "--to", url]) == 0
    out = capsys.readouterr().out
    assert "webhook_events: 5 row(s)" in out and "secret-1" not in out
    target = Store(url)
    try:
        assert webhook_events.counts(target)["total"] == 5
        assert [e.body for e in webhook_events.since(target, 0, 10)] == [
            e.body for e in webhook_events.since(source, 0, 10)
        ]
        # The id sequence goes on after the copied ids, and dedupe sees the copied rows.
        assert webhook_events.accept(target, "members:create", encode(member_document("m-1"))) == (1, True)
        assert webhook_events.accept(target, "members:create", encode(member_document("m-6"))) == (6, False)
        assert member_sync.request(target, "again", "2026-01-02T00:00:00.000Z") == 1  # the waiting one
        assert webhook_secrets.all_secrets(target) == ["secret-1"]
        assert members.get(target, "m-1").record.entitled_tier_ids == ("3001",)
        assert SessionStore(target).get("S" * 43).user_id == "7"
    finally:
        target.close()


def test_a_pre_alembic_file_is_copied_too(tmp_path, postgres):
    legacy_store(tmp_path / "old.sqlite3")
    url = postgres.create_database("copy_legacy")
    assert store_copy.main(["--from", f"sqlite:///{tmp_path / 'old.sqlite3'}", "--to", url]) == 0
    target = Store(url)
    try:
        assert webhook_events.counts(target)["total"] == 1
        assert webhook_secrets.known_ids(target) == {"hook"}
    finally:
        target.close()


def test_a_target_with_rows_is_refused_and_left_as_it_was(tmp_path, postgres, capsys):
    source = filled_sqlite(tmp_path / "bridge.sqlite3")
    url = postgres.create_database("copy_busy")
    target = Store(url)
    target.migrate()
    webhook_secrets.save(target, "theirs", "x")
    assert store_copy.main(["--from", source.url, "--to", url]) == 1
    assert "nothing was copied" in capsys.readouterr().err
    assert webhook_secrets.known_ids(target) == {"theirs"}
    assert webhook_events.counts(target)["total"] == 0
    target.close()


def test_postgresql_copies_back_into_sqlite(tmp_path, postgres):
    source = filled_sqlite(tmp_path / "a.sqlite3")
    url = postgres.create_database("copy_back")
    assert store_copy.main(["--from", source.url, "--to", url]) == 0
    back = f"sqlite:///{tmp_path / 'b.sqlite3'}"
    assert store_copy.main(["--from", url, "--to", back]) == 0
    again = Store(back)
    assert webhook_events.accept(again, "members:create", encode(member_document("m-7"))) == (6, False)
