"""No secret reaches a log: after the flows a site runs (OAuth login through the
sandbox's consent page, the single-page-app exchange, a reused code, session and
creator token refresh, member and post reads with emails, webhook management,
deliveries signed by the sandbox and by us, a forged one, live events with the
server key in the URL, logout), every log file of the stack (web, worker, watchdog,
sandbox and supervisord's own) is searched for every token, code, state, cookie,
secret and email the sandbox issued or seeded along the way.

Values are collected where they appear: codes and states from the redirects, tokens
from the bridge's store (read after every step, so rotated ones are caught too),
webhook secrets from the bridge's answer and the sandbox's control API, emails from
the member and identity reads and the webhook payloads.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
import requests

from harness.stack import Stack, body, wait_for
from tests.browser import Browser, query_of
from tests.webhook_deliveries import PATH as WEBHOOK_PATH
from tests.webhook_deliveries import encode, member_document, signed_headers

KEY = "log-safety-server-key-7f3a9c2e"
WRONG_KEY = "log-safety-wrong-key-5b8d1e4a"
SERVER = {"Authorization": f"Bearer {KEY}"}
JSON = {"Accept": "application/json"}
NEW_PATRON_EMAIL = "log-safety-new-patron@example.org"
TRACED_ID = "log-safety-trace-0042"  # a caller's X-Request-ID, followed into the worker's log
SANDBOX_SECRETS = (
    "sandbox-client-secret",
    "sandbox-creator-access-token",
    "sandbox-creator-refresh-token",
    "sandbox-webhook-secret",
)
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
MIN_LENGTH = 8  # shorter values (ids, counts) would match by accident


class Collected:
    """Every value that must never be logged, by kind."""

    def __init__(self):
        self.values: dict[str, set[str]] = {}

    def add(self, kind: str, *values: str | None) -> None:
        self.values.setdefault(kind, set()).update(v for v in values if v and len(v) >= MIN_LENGTH)

    def count(self, kind: str) -> int:
        return len(self.values.get(kind, ()))

    def all(self) -> list[tuple[str, str]]:
        return [(kind, v) for kind, values in self.values.items() for v in values]


@pytest.fixture(scope="module")
def stack():
    with Stack({"BRIDGE_API_KEY": KEY, "POST_LOGIN_URL": "/api/patreon/user"}, name="pb-logsafe") as running:
        yield running


def collect_stored_tokens(stack: Stack, seen: Collected) -> None:
    conn = sqlite3.connect(stack.dir / "var" / "bridge.sqlite3", timeout=5)
    try:
        for row in conn.execute("SELECT access_token, refresh_token FROM tokens"):
            seen.add("token", *(stack.cipher().open(v) for v in row))
    finally:
        conn.close()


def collect_webhook_secrets(stack: Stack, seen: Collected) -> None:
    hooks = body(stack.sandbox("GET", "/_sandbox/webhooks"))["webhooks"]
    seen.add("webhook secret", *(hook.get("secret") for hook in hooks))


def collect_emails(document: dict, seen: Collected) -> None:
    for item in [*(d if isinstance(d := document.get("data"), list) else [d]), *document.get("included", [])]:
        if isinstance(item, dict):
            seen.add("email", (item.get("attributes") or {}).get("email"))


def login(stack: Stack, seen: Collected, user_id: str) -> Browser:
    """The browser flow: /auth/patreon -> consent -> callback -> /api/patreon/user."""
    browser = Browser(stack)
    callback = browser.authorize(user_id)
    back = query_of(callback)
    seen.add("oauth code", back.get("code"))
    seen.add("oauth state", back.get("state"))
    final = browser.http.get(callback, headers=JSON, timeout=10)
    assert final.status_code == 200, final.text[:300]
    collect_emails(body(final), seen)
    seen.add("session cookie", browser.cookie)
    collect_stored_tokens(stack, seen)
    return browser


def single_page_app_exchange(stack: Stack, seen: Collected) -> None:
    browser = Browser(stack)
    start = body(
        browser.get("/api/patreon/auth/url", params={"scopes": "identity,identity[email],campaigns"})
    )
    seen.add("oauth state", start["state"])
    back = query_of(browser.consent(browser.http.get(start["authUrl"], timeout=10), "4"))
    seen.add("oauth code", back["code"])
    resp = browser.post("/api/patreon/auth/token", json={"code": back["code"], "state": back["state"]})
    assert resp.status_code == 200, resp.text[:300]
    seen.add("email", body(resp)["user"]["attributes"].get("email"))
    seen.add("session cookie", browser.cookie)
    # A reused code and state, and a code Patreon never issued: error paths log too.
    reused = browser.post("/api/patreon/auth/token", json={"code": back["code"], "state": back["state"]})
    assert reused.status_code == 400, reused.text[:300]
    forged = "log-safety-forged-code-0c1d2e3f"
    seen.add("oauth code", forged)
    start = body(browser.get("/api/patreon/auth/url"))
    seen.add("oauth state", start["state"])
    refused = browser.post("/api/patreon/auth/token", json={"code": forged, "state": start["state"]})
    assert refused.status_code == 401, refused.text[:300]
    # A Patreon ?error= on the callback.
    error_back = query_of(browser.authorize("5", decision="deny"))
    seen.add("oauth state", error_back.get("state"))
    denied = browser.http.get(stack.url("/auth/patreon/callback"), params=error_back, timeout=10)
    assert denied.status_code == 400, denied.text[:300]
    collect_stored_tokens(stack, seen)


def refresh_tokens(stack: Stack, seen: Collected, browser: Browser) -> None:
    # Explicit refresh of the session's own tokens (a refresh_token in the body is ignored).
    resp = browser.post("/api/patreon/auth/refresh", json={"refresh_token": "log-safety-ignored-refresh"})
    assert resp.status_code == 200, resp.text[:300]
    seen.add("token", "log-safety-ignored-refresh")
    collect_stored_tokens(stack, seen)
    # An expired access token: the next read refreshes on its own.
    conn = sqlite3.connect(stack.dir / "var" / "bridge.sqlite3", timeout=5)
    try:
        (access,) = conn.execute(
            "SELECT access_token FROM tokens WHERE principal = ?", ("session:" + browser.cookie,)
        ).fetchone()
    finally:
        conn.close()
    access = stack.cipher().open(access)  # sealed in the store
    assert stack.sandbox("POST", "/_sandbox/tokens/expire", json={"access_token": access}).status_code == 200
    assert browser.get("/api/patreon/user").status_code == 200
    collect_stored_tokens(stack, seen)
    # The creator's token: expire it, and a server-key read refreshes and rotates it.
    assert stack.get("/api/patreon/campaigns", headers=SERVER).status_code == 200
    collect_stored_tokens(stack, seen)
    for _kind, token in [kv for kv in seen.all() if kv[0] == "token"]:
        stack.sandbox("POST", "/_sandbox/tokens/expire", json={"access_token": token})
    assert stack.get("/api/patreon/campaigns", headers=SERVER).status_code == 200
    collect_stored_tokens(stack, seen)


def read_members_and_posts(stack: Stack, seen: Collected) -> None:
    members = stack.get(
        "/api/patreon/campaigns/1001/members",
        params={
            "all": "true",
            "fields[member]": "email,full_name,patron_status",
            "include": "user",
            "fields[user]": "email,full_name",
        },
        headers=SERVER,
        timeout=60,
    )
    assert members.status_code == 200, members.text[:300]
    document = body(members)
    collect_emails(document, seen)
    member_id = document["data"][0]["id"]
    one = stack.get(f"/api/patreon/members/{member_id}", params={"fields[member]": "email"}, headers=SERVER)
    assert one.status_code == 200, one.text[:300]
    collect_emails(body(one), seen)
    posts = stack.get("/api/patreon/campaigns/1001/posts", headers={**SERVER, "X-Request-ID": TRACED_ID})
    assert posts.status_code == 200 and posts.headers["X-Request-ID"] == TRACED_ID
    # A wrong server key is refused, and is not logged either.
    seen.add("server key", KEY, WRONG_KEY)
    wrong = stack.get("/api/patreon/campaigns", headers={"Authorization": f"Bearer {WRONG_KEY}"})
    assert wrong.status_code == 401


def webhooks(stack: Stack, seen: Collected) -> None:
    before = body(stack.get("/api/patreon/webhooks/events", params={"limit": "1000"}, headers=SERVER))
    count_before = len(before.get("events", []))
    created = stack.post(
        "/api/patreon/webhooks",
        json={
            "uri": stack.url(WEBHOOK_PATH),
            "triggers": [
                "members:create",
                "members:update",
                "members:pledge:create",
                "members:pledge:update",
            ],
            "campaign_id": "1001",
        },
        headers=SERVER,
    )
    assert created.status_code == 201, created.text[:300]
    seen.add("webhook secret", (body(created).get("webhook") or {}).get("secret"))
    collect_webhook_secrets(stack, seen)
    assert stack.get("/api/patreon/webhooks", headers=SERVER).status_code == 200

    # The sandbox signs and sends deliveries (with the patrons' emails in them).
    seen.add("email", NEW_PATRON_EMAIL)
    added = stack.sandbox("POST", "/_sandbox/members", json={"email": NEW_PATRON_EMAIL})
    assert added.status_code in (200, 201), added.text[:300]
    # A delivery of our own, signed with the configured secret, and a forged one.
    document = member_document(user_id="77", note="log safety")
    collect_emails(document, seen)
    payload = encode(document)
    ok = stack.post(WEBHOOK_PATH, data=payload, headers=signed_headers("sandbox-webhook-secret", payload))
    assert ok.status_code == 200, ok.text[:300]
    forged = stack.post(
        WEBHOOK_PATH, data=payload, headers=signed_headers("log-safety-wrong-secret", payload)
    )
    assert forged.status_code == 401
    seen.add("webhook secret", "log-safety-wrong-secret")

    def delivered() -> bool:
        events = body(stack.get("/api/patreon/webhooks/events", params={"limit": "1000"}, headers=SERVER))
        # The sandbox's new member (its triggers carry one body: stored once), and ours.
        return len(events.get("events", [])) >= count_before + 2

    wait_for(delivered, 20, interval_s=0.2, what="the sandbox's signed deliveries to be stored")
    stored = body(stack.get("/api/patreon/webhooks/events", params={"limit": "1000"}, headers=SERVER))
    for event in stored["events"]:  # {id, type, data: <member>, included, receivedAt}
        collect_emails(event, seen)


def live_events_with_key_in_url(stack: Stack, seen: Collected) -> None:
    # EventSource cannot send headers: the key may come as ?key=; it must not be logged.
    stack.wait_live()
    with requests.get(
        stack.live_url + "/api/patreon/events", params={"key": KEY, "since": "0"}, stream=True, timeout=(5, 5)
    ) as resp:
        assert resp.status_code == 200
        next(resp.iter_lines(), None)


def logout(stack: Stack, seen: Collected, browser: Browser) -> None:
    assert browser.post("/api/patreon/auth/logout").status_code == 200


@pytest.mark.timeout(180)
def test_no_token_code_secret_cookie_or_email_in_any_log(stack: Stack):
    seen = Collected()
    seen.add("sandbox secret", *SANDBOX_SECRETS)
    browser = login(stack, seen, "2")
    login(stack, seen, "3")
    single_page_app_exchange(stack, seen)
    refresh_tokens(stack, seen, browser)
    read_members_and_posts(stack, seen)
    webhooks(stack, seen)
    live_events_with_key_in_url(stack, seen)
    logout(stack, seen, browser)
    collect_stored_tokens(stack, seen)
    collect_webhook_secrets(stack, seen)

    counts = {kind: seen.count(kind) for kind in sorted(seen.values)}
    print(f"\nlog safety: searched for {sum(counts.values())} values: {counts}")
    # The collection must be meaningful, or the search proves nothing.
    assert counts["token"] >= 8, counts
    assert counts["oauth code"] >= 4 and counts["oauth state"] >= 4, counts
    assert counts["session cookie"] >= 3, counts
    assert counts["email"] >= 100, counts
    assert counts["webhook secret"] >= 2, counts  # the created webhook's, a wrong one

    files = stack.log_files()
    names = {path.name for path in files}
    assert {"web_00.log", "worker_00.log", "watchdog.log", "sandbox.log", "supervisord.log", "live_00.log"} <= names, names
    # The search reads the right files: what should be logged is there.
    web_log, worker_log = stack.log_text("web"), stack.log_text("worker")
    assert "GET /api/patreon/user 200" in web_log and "📨 Patreon webhook received: members:create" in web_log
    assert "✅ Patreon service initialized successfully" in worker_log
    # One request id in both processes' lines: it travelled over ZeroMQ with the call.
    assert f"[{TRACED_ID}] GET /api/patreon/campaigns/1001/posts 200" in web_log
    assert f"[{TRACED_ID}]" in worker_log, "the request id did not reach the worker's log"
    leaks: list[str] = []
    for path in files:
        text = path.read_text(errors="replace")
        leaks += [f"{path.name}: {kind} {value[:10]}..." for kind, value in seen.all() if value in text]
        leaks += [f"{path.name}: an email {m[:3]}...@..." for m in sorted(set(EMAIL.findall(text)))]
        leaks += [
            f"{path.name}: {marker!r}"
            for marker in ("pb_session=", "Bearer ", "access_token", "refresh_token")
            if marker in text
        ]
    assert not leaks, "secrets in the logs:\n" + "\n".join(leaks)
    assert all(
        path.stat().st_size > 0 for path in files if path.name in ("web_00.log", "worker_00.log", "sandbox.log")
    )


def sandbox_issued_tokens(stack: Stack) -> set[str]:
    """Every access and refresh token the sandbox issued to this stack (its tokens.json)."""
    state = json.loads((stack.dir / "var" / "sandbox-state" / "tokens.json").read_text())
    found: set[str] = set()

    def walk(value, key=""):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and "token" in key and len(value) >= MIN_LENGTH:
            found.add(value)

    walk(state)
    return found


def test_the_raw_store_holds_no_token_or_secret_in_clear_text(stack: Stack):
    """Issue 16: after the flows above (logins, refreshes, webhook create), the SQLite
    file and its WAL hold every token and webhook secret sealed, none in clear text."""
    login(stack, Collected(), "5")
    created = stack.post(
        "/api/patreon/webhooks",
        json={"uri": stack.url(WEBHOOK_PATH) + "?raw", "triggers": ["members:delete"], "campaign_id": "1001"},
        headers=SERVER,
    )
    assert created.status_code == 201, created.text
    tokens = sandbox_issued_tokens(stack) | set(SANDBOX_SECRETS[1:3])
    secrets = {hook["secret"] for hook in body(stack.sandbox("GET", "/_sandbox/webhooks"))["webhooks"]}
    secrets.discard(None)
    assert len(tokens) >= 8 and secrets, (len(tokens), len(secrets))
    store = stack.dir / "var" / "bridge.sqlite3"
    raw = b"".join(p.read_bytes() for p in (store, Path(f"{store}-wal")) if p.exists())
    assert Path(f"{store}-wal").exists()
    cipher = stack.cipher()
    conn = sqlite3.connect(store, timeout=5)
    try:
        sealed = [
            v for row in conn.execute("SELECT access_token, refresh_token FROM tokens") for v in row if v
        ]
    finally:
        conn.close()
    assert sealed and {cipher.open(v) for v in sealed} <= tokens  # what is stored is sealed tokens
    leaks = [f"{value[:8]}..." for value in sorted(tokens | secrets) if value.encode() in raw]
    assert not leaks, f"in clear text in the store: {leaks}"
