"""Shared fixtures. Integration tests use ``harness.stack.Stack``: the real supervisord."""

from __future__ import annotations

import warnings

import pytest

from harness.postgres import MISSING, Cluster, binaries
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


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL cluster for the whole session (harness/postgres.py);
    skipped loudly where Debian's postgresql package is not installed."""
    bin_dir = binaries()
    if bin_dir is None:
        warnings.warn(MISSING, stacklevel=1)
        pytest.skip(MISSING)
    cluster = Cluster(bin_dir).init()
    try:
        yield cluster
    finally:
        cluster.destroy()
