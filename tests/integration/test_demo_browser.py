"""The demo page in a real browser: headless Chromium (tests/cdp.py) on the real stack.

A patron opens the bridge, is sent to the demo page, logs in with Patreon through the
sandbox's consent page and sees their memberships and tiers; logs out; the creator
logs in the same way, sees their campaign, and a sandbox member change makes a live
event appear in both feeds (Socket.IO with the shipped socket.io client, and
EventSource). Screenshots of the three views are saved under var/test-artifacts/ (the
path is printed). No page error, CSP refusal or failed load is allowed.
"""

from __future__ import annotations

import json

import pytest

from harness.stack import REPO, Stack
from tests.cdp import Chromium, chromium_binary
from tests.webhook_deliveries import PATH

ARTIFACTS = REPO / "var" / "test-artifacts"
CREATOR, PATRON = "1", "2"


@pytest.fixture(scope="module")
def stack():
    chromium_binary()  # skip, loudly, before starting a stack for nothing
    stack = Stack(name="pb-chromium")
    stack.env["SANDBOX_WEBHOOK_URI"] = stack.url(PATH)  # the sandbox delivers to our receiver
    with stack.start():
        yield stack


def shown(element_id: str) -> str:
    return f"!document.getElementById({json.dumps(element_id)}).hidden"


def texts(selector: str) -> str:
    return f"[...document.querySelectorAll({json.dumps(selector)})].map(e => e.textContent)"


def log_in(browser: Chromium, stack: Stack, user_id: str) -> None:
    """From the demo page's login section, through the sandbox consent page, back."""
    browser.wait_for(shown("login"), what="the login section")
    browser.evaluate("setTimeout(() => document.getElementById('login-link').click(), 0)")
    browser.wait_for(
        f"location.href.startsWith({json.dumps(stack.sandbox_url + '/oauth2/authorize')})"
        " && !!document.querySelector('select[name=user_id]')",
        what="the sandbox's consent page",
    )
    browser.evaluate(
        f"document.querySelector('select[name=user_id]').value = {json.dumps(user_id)};"
        "setTimeout(() => document.querySelector('button[name=decision][value=allow]').click(), 0)"
    )
    browser.wait_for(
        f"location.href === {json.dumps(stack.url('/demo'))} && {shown('me')}",
        what=f"the demo page logged in as user {user_id}",
    )


def active_member_id(stack: Stack) -> str:
    members = stack.sandbox(
        "GET",
        "/api/oauth2/v2/campaigns/1001/members",
        params={"fields[member]": "patron_status", "page[count]": "5"},
        headers={"Authorization": "Bearer sandbox-creator-access-token"},
    ).json()
    return next(m["id"] for m in members["data"] if m["attributes"]["patron_status"] == "active_patron")


def test_log_in_see_memberships_then_a_live_event_as_the_creator(stack: Stack):
    with Chromium() as browser:
        browser.navigate(stack.url("/"))  # a newcomer opens the bridge itself
        browser.wait_for(shown("login"), what="the login section")
        login_shot = browser.screenshot(ARTIFACTS / "demo-login.png")
        log_in(browser, stack, PATRON)
        assert browser.evaluate("document.getElementById('user-id').textContent") == PATRON
        assert browser.evaluate("document.getElementById('mode').textContent") == "sandbox mode"
        browser.wait_for("document.querySelectorAll('#memberships tbody tr').length > 0", what="memberships")
        rows = browser.evaluate(
            "[...document.querySelectorAll('#memberships tbody tr')].map(r => [...r.cells].map(c => c.textContent))"
        )
        # Campaign, status, tiers, pledge, since: the sandbox's own data, with a tier.
        assert any(
            row[1] == "active_patron" and row[2] != "none" and row[3].startswith("$") for row in rows
        ), rows
        browser.wait_for(shown("not-creator"), what="the note that live events are the creator's")
        assert browser.evaluate(shown("creator")) is False
        patron_shot = browser.screenshot(ARTIFACTS / "demo-patron.png")

        browser.evaluate("document.getElementById('logout').click()")
        log_in(browser, stack, CREATOR)
        browser.wait_for(shown("creator"), what="the creator's campaign")
        browser.wait_for(
            "document.getElementById('sio-status').textContent === 'live'"
            " && document.getElementById('sse-status').textContent === 'live'",
            what="both live feeds connected",
        )
        assert browser.evaluate("document.querySelectorAll('#tiers li').length") > 0
        # Seated by the tail thread (within a tick of connecting), then a member changes.
        browser.evaluate("new Promise(r => setTimeout(r, 300))")
        member_id = active_member_id(stack)
        upgraded = stack.sandbox("POST", f"/_sandbox/members/{member_id}/upgrade", json={})
        assert upgraded.status_code == 200, upgraded.text
        # The feeds also show the entitlement:changed event the upgrade causes (issue 11).
        webhooks_only = ':not([data-type="entitlement:changed"])'
        browser.wait_for(
            f"document.querySelectorAll('#sio-events li{webhooks_only}').length >= 1"
            f" && document.querySelectorAll('#sse-events li{webhooks_only}').length >= 1",
            timeout_s=20,
            what="the upgrade's webhook event in both feeds",
        )
        for feed in (f"#sio-events li{webhooks_only}", f"#sse-events li{webhooks_only}"):
            items = browser.evaluate(texts(feed))
            assert all(f"member {member_id}" in item for item in items), items
            types = browser.evaluate(f"[...document.querySelectorAll({json.dumps(feed)})].map(e => e.dataset.type)")
            # Its two triggers carry the same body: stored once (issue 16).
            assert types == ["members:update"], types
        creator_shot = browser.screenshot(ARTIFACTS / "demo-creator-live.png")
        print(f"\nscreenshots: {login_shot} {patron_shot} {creator_shot}")
        # The page asks /api/patreon/user whether anyone is logged in: 401 means no one.
        probe = "status of 401 (Unauthorized) " + stack.url("/api/patreon/user")
        assert [e for e in browser.page_errors() if not e.endswith(probe)] == []
