"""Shared fixtures. Integration tests use ``harness.stack.Stack``: the real supervisord."""

from __future__ import annotations

import pytest

from harness.stack import Stack


@pytest.fixture(scope="module")
def stack():
    """One running stack for a test module (tests that break it must mend it)."""
    with Stack() as running:
        yield running


@pytest.fixture
def fresh_stack():
    """A stack of one's own, for tests that end it in a state others cannot use."""
    with Stack() as running:
        yield running
