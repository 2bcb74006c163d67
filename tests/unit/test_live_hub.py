"""The hub with the real store: replay then live, in order, once; overflow drops one
client with a reason and nobody else."""

from __future__ import annotations

import asyncio
import re
import socket
import types

import pytest

from live import sse as sse_module
from live.audience import SERVER, Audience
from live.hub import SLOW_CONSUMER, Hub
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


def _direct_stream(store, writer_chunked):
    """One SSE client on the direct path over a real socket pair; what its peer read."""

    async def scenario():
        here, there = socket.socketpair()
        there.setblocking(False)
        _reader, stream = await asyncio.open_connection(sock=here)
        writer = types.SimpleNamespace(transport=stream.transport)  # uvicorn's cycle, as live sees it
        if writer_chunked is not None:
            writer.chunked_encoding = writer_chunked  # what uvicorn's httptools cycle tells
        hub = Hub(store, public_feed=False)
        await hub.start()
        client = SseClient(SERVER, 100, hub, writer=writer, http_version="1.0")
        body = client.chunks(hub.cursor)
        hello = await body.__anext__()  # Falcon writes it through uvicorn; then events go direct
        waiting = asyncio.ensure_future(body.__anext__())
        for _ in range(50):  # until it is seated
            await asyncio.sleep(0.01)
            if client in hub.clients:
                break
        ids = [accept(store, n, note="z" * (n * 300)) for n in range(6)]
        await hub.tail_once()
        await asyncio.sleep(0.05)
        read = b""
        while True:
            try:
                read += there.recv(1 << 20)
            except BlockingIOError:
                break
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await body.aclose()
        stream.close()
        there.close()
        hub.close()
        return hello.data, client, ids, read

    return asyncio.run(scenario())


def _sse_ids(text: bytes) -> list[int]:
    return [int(x) for x in re.findall(rb"^id: (\d+)$", text, re.M)]


def test_a_direct_sse_stream_is_written_bare_frames_where_the_body_runs_to_the_close(store):
    hello, client, ids, read = _direct_stream(store, writer_chunked=None)  # h11, HTTP/1.0
    assert hello.startswith(b"retry: ")
    assert client.direct_ready and client.queue.empty()  # nothing went the queue's way
    assert _sse_ids(read) == ids
    assert read.startswith(b"id: ") and read.count(b"\n\n") == len(ids)  # no chunk sizes


def test_a_direct_sse_stream_is_written_chunks_when_uvicorn_chunked_the_body(store):
    _hello, client, ids, read = _direct_stream(store, writer_chunked=True)
    assert client.direct_ready
    frames, rest = [], read
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        frames.append(rest[:size])
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]
    assert [_sse_ids(f) for f in frames] == [[i] for i in ids]  # one chunk per event, whole


def test_a_dropped_direct_sse_stream_is_cut_after_the_grace_unless_it_has_ended(store, monkeypatch):
    """A client that never reads again would keep its transport's buffer, and its place,
    behind the disconnect reason: live cuts it. A stream that has ended is left alone
    (its connection may already serve another request)."""
    monkeypatch.setattr(sse_module, "DROP_GRACE_S", 0.05)

    async def dropped(stream_ends: bool) -> bool:
        here, there = socket.socketpair()
        _reader, stream = await asyncio.open_connection(sock=here)
        hub = Hub(store, public_feed=False)
        await hub.start()
        client = SseClient(SERVER, 100, hub, writer=types.SimpleNamespace(transport=stream.transport))
        body = client.chunks(hub.cursor)
        await body.__anext__()  # the hello; once Falcon asks for more, the stream is direct
        reason = asyncio.ensure_future(body.__anext__())
        await asyncio.sleep(0.01)
        assert client.direct_ready
        await client.drop(SLOW_CONSUMER)
        assert (await reason).data.startswith(b"event: patreon:disconnect")
        if stream_ends:
            with pytest.raises(StopAsyncIteration):
                await body.__anext__()
        # Otherwise Falcon never asks again: its send of the reason waits for room.
        await asyncio.sleep(0.2)
        cut = stream.transport.is_closing()
        if not stream_ends:
            await body.aclose()
        stream.close()
        there.close()
        hub.close()
        return cut

    assert asyncio.run(dropped(stream_ends=False)) is True
    assert asyncio.run(dropped(stream_ends=True)) is False
