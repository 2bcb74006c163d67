"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from store.database import Store

# Tables a test may fill; emptied before each PostgreSQL test (the schema stays).
_KEPT = ("alembic_version", "table_generations")


@pytest.fixture(scope="session")
def postgres_unit_url(postgres):
    """One migrated PostgreSQL database for the unit tests' ``store``."""
    url = postgres.create_database("unit")
    store = Store(url)
    store.migrate()
    store.close()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    """A migrated store, once on a SQLite file in a fresh temporary folder and once on
    the throw-away PostgreSQL cluster (emptied first, ids starting at 1 again)."""
    if request.param == "sqlite":
        store = Store(tmp_path / "bridge.sqlite3")
        store.migrate()
        yield store
        store.close()
        return
    store = Store(request.getfixturevalue("postgres_unit_url"))
    with store.transaction() as conn:
        tables = [
            row["tablename"]
            for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            if row["tablename"] not in _KEPT
        ]
        conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
        conn.execute("UPDATE table_generations SET generation = 0")
    yield store
    store.close()
