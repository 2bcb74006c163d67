"""A new user's plain login, on a stack with no settings at all (sandbox mode,
default scopes, default POST_LOGIN_URL): the browser lands on the demo page, and a
creator who logged in with the plain link hears their campaign's live events over
SSE and Socket.IO, while a patron is still refused them; and supervisord says only the
CRIT lines the docs explain."""

from __future__ import annotations

import http.client
import json
import os
import stat
import time

import pytest
import requests
import socketio

from harness.stack import Stack, wait_for
from tests.browser import Browser, query_of
from tests.webhook_deliveries import PATH

CREATOR, PATRON = "1", "2"


@pytest.fixture(scope="module")
def stack():
    stack = Stack(name="pb-default")
    # The sandbox delivers its own webhooks to our receiver; nothing else is configured.
    stack.env["SANDBOX_WEBHOOK_URI"] = stack.url(PATH)
    with stack.start():
        yield stack


def active_member_id(stack: Stack) -> str:
    members = stack.sandbox(
        "GET",
        "/api/oauth2/v2/campaigns/1001/members",
        params={"fields[member]": "patron_status", "page[count]": "5"},
        headers={"Authorization": "Bearer sandbox-creator-access-token"},
    ).json()
    return next(m["id"] for m in members["data"] if m["attributes"]["patron_status"] == "active_patron")


def test_plain_login_asks_for_campaigns_and_lands_on_the_demo_page(stack):
    browser = Browser(stack)
    consent = browser.http.get(stack.url("/auth/patreon"), timeout=10)
    assert query_of(consent.url)["scope"].split() == [
        "identity",
        "identity[email]",
        "identity.memberships",
        "campaigns",
    ]
    final = browser.http.get(browser.consent(consent, CREATOR), timeout=10)
    assert final.url == stack.url("/demo"), final.url
    assert final.status_code == 200 and final.headers["Content-Type"].startswith("text/html")
    assert "Patreon Bridge" in final.text


def test_creator_with_the_plain_login_hears_live_events(stack):
    creator = Browser(stack)
    creator.login(CREATOR)
    cookie = {"Cookie": f"pb_session={creator.cookie}"}

    stack.wait_live()  # SSE and Socket.IO are the live program's
    conn = http.client.HTTPConnection("127.0.0.1", stack.live_port, timeout=20)
    conn.request("GET", "/api/patreon/events", headers=cookie)
    sse = conn.getresponse()
    assert sse.status == 200, sse.read()[:300]

    heard: list[dict] = []
    client = socketio.Client(reconnection=False)
    client.on("patreon:webhook", heard.append)
    client.connect(stack.live_url, headers=cookie, transports=["polling"], wait_timeout=10)
    try:
        time.sleep(0.3)  # the hub seats the client after its CONNECT answer
        member_id = active_member_id(stack)
        upgraded = stack.sandbox("POST", f"/_sandbox/members/{member_id}/upgrade", json={})
        assert upgraded.status_code == 200, upgraded.text
        # Two triggers with the same body: stored once (dedupe on the body, issue 16).
        wait_for(lambda: len(heard) >= 1, 15, what="the upgrade's webhook over Socket.IO")
        assert {event["data"]["id"] for event in heard} == {member_id}
        data_lines = []
        while len(data_lines) < 1:
            line = sse.readline().decode()
            assert line, "the SSE stream ended"
            if line.startswith("data: "):
                data_lines.append(json.loads(line[6:]))
        assert [d["type"] for d in data_lines] == ["members:update"]
    finally:
        client.disconnect()
        conn.close()


def test_a_patron_is_still_refused_live_events(stack):
    patron = Browser(stack)
    patron.login(PATRON)
    stack.wait_live()
    refused = requests.get(
        stack.live_url + "/api/patreon/events", headers={"Cookie": f"pb_session={patron.cookie}"}, timeout=10
    )
    assert refused.status_code == 403 and refused.json()["code"] == "FORBIDDEN"


def test_a_start_prints_only_the_documented_crit_lines(stack):
    # supervisord's two CRIT lines are explained in the docs, not configured away: the
    # control socket is the owner's alone (chmod 0700), so an HTTP password on it would
    # guard nothing the file mode does not, and user= would break a user install.
    sock = stack.dir / "var" / "supervisor.sock"
    assert stat.S_IMODE(sock.stat().st_mode) == 0o700
    crit = [
        line.split(" CRIT ", 1)[1] for line in stack.log_text("supervisord").splitlines() if " CRIT " in line
    ]
    expected = ["Server 'unix_http_server' running without any HTTP authentication checking"]
    if os.geteuid() == 0:
        expected.insert(0, "Supervisor is running as root.")
    assert [line[: len(want)] for line, want in zip(crit, expected, strict=False)] == expected, crit
    assert len(crit) == len(expected), crit
    # supervisorctl and the watchdog's XML-RPC both reach supervisord over that socket.
    assert stack.ctl("status").returncode == 0
    assert "watchdog" in stack.ctl("status").stdout
