"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from store.database import Store


@pytest.fixture
def store(tmp_path):
    """A migrated store in a fresh temporary folder: the real SQLite schema."""
    store = Store(tmp_path / "bridge.sqlite3")
    store.migrate()
    return store
