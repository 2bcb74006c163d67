"""Two live processes under the real supervisord (``numprocs=2`` through the documented
supervisord.d/ override, ``LIVE_PROCESSES=2``): live_NN listens on LIVE_PORT + NN and
web wakes each one on its own socket, so an SSE subscriber on either hears a webhook
posted to web, once (docs/scaling-out.md, "Several live processes")."""

from __future__ import annotations

import asyncio
import time

import pytest
import requests

from harness.stack import Stack, body
from tests.live_clients import SseSubscriber
from tests.webhook_deliveries import PATH, encode, member_document, signed_headers

pytestmark = pytest.mark.timeout(240)

KEY = "integration-live-processes-key"
SECRET = "integration-live-processes-secret"
# A poll far slower than the wait below: an event that arrives came by the wake-up.
POLL_S = 30
WAKEUP_WAIT_S = 5
LIVES = ("live:live_00", "live:live_01")


@pytest.fixture(scope="module")
def stack():
    env = {
        "BRIDGE_API_KEY": KEY,
        "PATREON_WEBHOOK_SECRET": SECRET,
        "SANDBOX_WEBHOOK_SECRET": SECRET,
        "LIVE_POLL_INTERVAL_S": str(POLL_S),
    }
    with Stack(env, name="pb-lives", lives=2) as running:
        running.wait_live()
        yield running


def deliver(stack: Stack, document: dict) -> int:
    raw = encode(document)
    resp = stack.post(PATH, data=raw, headers=signed_headers(SECRET, raw, "members:create"))
    assert resp.status_code == 200, resp.text
    return body(resp)["id"]


def test_two_live_processes_run_each_on_its_own_port(stack: Stack):
    pids = [stack.pid(name) for name in LIVES]
    assert all(pids) and pids[0] != pids[1], pids
    assert [stack.state(name) for name in LIVES] == ["RUNNING", "RUNNING"]
    for url in stack.live_urls:
        assert requests.get(url + "/api/patreon/live/health", timeout=5).status_code == 200, url
    assert stack.live_urls[1].endswith(f":{stack.live_port + 1}")
    for name in ("live_00", "live_01"):  # each has its own log
        assert "Live delivery listening" in stack.log_text(name), name


def test_a_webhook_reaches_an_sse_subscriber_on_each_live_process_once(stack: Stack):
    async def scenario():
        subs = [SseSubscriber("127.0.0.1", stack.live_port + i, {"key": KEY}).start() for i in range(2)]
        for sub in subs:
            await asyncio.wait_for(sub.connected.wait(), 10)
        ids = []
        for n in range(3):
            sent = time.monotonic()
            event_id = await asyncio.to_thread(deliver, stack, member_document(f"live-two-{n}"))
            ids.append(event_id)
            while not all(event_id in s.received for s in subs) and time.monotonic() - sent < WAKEUP_WAIT_S:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)  # room for a duplicate to show
        for sub in subs:
            await sub.stop()
        return ids, subs

    ids, subs = asyncio.run(scenario())
    for n, sub in enumerate(subs):
        assert [i for i in ids if i in sub.received] == ids, f"live_0{n} missed some of {ids} (woken?)"
        assert sub.duplicates == 0, f"live_0{n} sent {sub.duplicates} event(s) twice"
        assert sub.connects == 1
