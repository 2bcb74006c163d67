"""The hub with the real store: replay then live, in order, once; overflow drops one
client with a reason and nobody else."""

from __future__ import annotations

import asyncio
import re

from live.audience import SERVER, Audience
from live.hub import Hub
from live.sse import SseClient
from store import webhook_events
from tests.webhook_deliveries import encode, member_document


def accept(store, n: int, **kw) -> int:
    return webhook_events.accept(store, "members:update", encode(member_document(f"hub-{n}", **kw)))[0]


def ids_in(client: SseClient) -> list[int]:
    found = []
    while not client.queue.empty():
        item = client.queue.get_nowait()
        if item is not None:
            found += [int(x) for x in re.findall(rb"^id: (\d+)$", item, re.M)]
    return found


def test_a_joining_client_gets_its_replay_then_live_events_in_order_once(store):
    async def scenario():
        before = [accept(store, n) for n in range(5)]
        hub = Hub(store, public_feed=False, cache_events=3)  # a tiny cache: the replay reads the store
        await hub.start()
        during = [accept(store, n) for n in range(5, 9)]
        await hub.tail_once()  # the cache now holds only the last 3
        client = SseClient(SERVER, 100, hub)
        assert await hub.join(client, before[1], settle_events=2)
        after = [accept(store, n) for n in range(9, 11)]
        await hub.tail_once()
        await hub.tail_once()  # nothing new: nothing twice
        hub.close()
        return before, during, after, ids_in(client)

    before, during, after, got = asyncio.run(scenario())
    assert got == before[2:] + during + after


def test_an_audience_hears_only_its_own_events(store):
    async def scenario():
        hub = Hub(store, public_feed=False)
        await hub.start()
        patron = SseClient(Audience("patron", user_id="55"), 100, hub)
        creator = SseClient(Audience("creator", frozenset({"2002"})), 100, hub)
        for client in (patron, creator):
            assert await hub.join(client, hub.cursor, settle_events=10)
        mine = accept(store, 1, user_id="55")
        accept(store, 2, user_id="56")
        theirs = accept(store, 3, user_id="57", campaign_id="2002")
        await hub.tail_once()
        hub.close()
        return mine, theirs, ids_in(patron), ids_in(creator)

    mine, theirs, patron_got, creator_got = asyncio.run(scenario())
    assert patron_got == [mine] and creator_got == [theirs]


def test_a_full_client_is_dropped_with_a_reason_and_the_others_get_everything(store):
    async def scenario():
        hub = Hub(store, public_feed=False)
        await hub.start()
        slow, fast = SseClient(SERVER, 3, hub), SseClient(SERVER, 100, hub)
        for client in (slow, fast):
            assert await hub.join(client, hub.cursor, settle_events=1)
        ids = [accept(store, n) for n in range(6)]
        await hub.tail_once()
        ended = [item for item in list(slow.queue._queue) if item is not None]
        hub.close()
        return ids, ids_in(fast), slow, ended, slow in hub.clients

    ids, fast_got, slow, ended, still_filed = asyncio.run(scenario())
    assert fast_got == ids
    assert slow.closed and slow.reason == "SLOW_CONSUMER" and not still_filed
    assert len(ended) == 1 and b"patreon:disconnect" in ended[0] and b"SLOW_CONSUMER" in ended[0]
