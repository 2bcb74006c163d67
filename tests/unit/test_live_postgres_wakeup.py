"""live's wake-up on a PostgreSQL store (live.notify.PostgresWakeupListener): a commit
to the event log by any connection (any host) wakes it; nothing else does. The real
throw-away cluster; no timing is asserted."""

from __future__ import annotations

import asyncio

from live.notify import PostgresWakeupListener
from store import webhook_events, webhook_secrets
from store.database import Store
from tests.webhook_deliveries import encode, member_document


def test_an_event_committed_elsewhere_wakes_the_listener_and_other_writes_do_not(postgres_unit_url):
    writer = Store(postgres_unit_url)  # stands in for another host's web

    async def scenario() -> tuple[bool, bool, bool]:
        listener = PostgresWakeupListener(postgres_unit_url)
        try:
            assert await listener.wait(0.05) is False  # connects and listens; nothing yet
            webhook_secrets.save(writer, "hook", "s")  # another table: no wake-up
            quiet = await listener.wait(0.3)
            await asyncio.to_thread(webhook_events.accept, writer, "members:create", encode(member_document("w-1")))
            woken = await listener.wait(10)
            after = await listener.wait(0.3)  # drained: one commit, one wake-up
            return quiet, woken, after
        finally:
            await listener.aclose()

    try:
        assert asyncio.run(scenario()) == (False, True, False)
    finally:
        writer.close()


def test_a_listener_without_its_server_returns_and_polls(postgres):
    listener = PostgresWakeupListener(postgres.url("no_such_database"))
    assert asyncio.run(listener.wait(0.05)) is False
