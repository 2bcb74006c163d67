"""`python -m sandbox` as a real process on a free port, delivering real webhooks to a
tiny local receiver: signatures verified with the secret returned at creation, pause
after repeated failures, resend on PATCH paused=false, nothing secret in the logs, and
a SIGTERM that lets the in-flight request finish."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
CREATOR_TOKEN = "sandbox-creator-access-token"  # the documented default
SEEDED_SECRET = "seeded-secret-for-live-tests"
UA = {"User-Agent": "sandbox-live-tests/1.0"}
START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll until truthy; fail loudly at the deadline."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except (requests.RequestException, OSError, ValueError, KeyError) as ex:
            last = ex
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s:g}s waiting for {what} (last error: {last!r})")


class Receiver:
    """A webhook endpoint: records every attempt; answers with a per-path status."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.attempts: list[dict[str, Any]] = []
        self.status: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.status.get(self.path, 200)
                with receiver.lock:
                    receiver.attempts.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body, "status": status}
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [a for a in self.attempts if a["path"] == path and a["status"] < 300]

    def failed(self, path: str) -> int:
        with self.lock:
            return sum(1 for a in self.attempts if a["path"] == path and a["status"] >= 300)


class LiveSandbox:
    def __init__(self, tmp: Path, receiver: Receiver):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp / "sandbox.log"
        scrubbed = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SANDBOX_", "PATREON_")) and k not in ("HOST", "PORT", "DATA_DIR")
        }
        env = scrubbed | {
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "SANDBOX_PORT": str(self.port),
            "SANDBOX_MEMBERS": "40",
            "SANDBOX_WEBHOOK_URI": f"{receiver.url}/seeded",
            "SANDBOX_WEBHOOK_SECRET": SEEDED_SECRET,
            "SANDBOX_WEBHOOK_RETRY_S": "0.3",
            "SANDBOX_WEBHOOK_PAUSE_AFTER": "2",
            "SANDBOX_WEBHOOK_TIMEOUT_S": "2",
        }
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "--supervised"],
            cwd=tmp,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        def answers() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"sandbox exited with {self.process.returncode}:\n{self.logs()}")
            return requests.get(f"{self.url}/_sandbox/state", timeout=1).status_code == 200

        wait_for(answers, START_TIMEOUT_S, f"the sandbox on {self.url}")

    def logs(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()
        return self.process.returncode

    def api(self, method: str, path: str, token: str = CREATOR_TOKEN, **kw: Any) -> requests.Response:
        headers = UA | {"Authorization": f"Bearer {token}"}
        return requests.request(method, f"{self.url}/api/oauth2/v2{path}", headers=headers, timeout=5, **kw)

    def control(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(method, f"{self.url}/_sandbox{path}", json=body, timeout=5)
        assert response.status_code < 300, response.text
        return response.json()


@pytest.fixture(scope="module")
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def live(tmp_path_factory, receiver):
    sandbox = LiveSandbox(tmp_path_factory.mktemp("live-sandbox"), receiver)
    try:
        sandbox.wait_ready()
        yield sandbox
    finally:
        sandbox.stop()


def signed_by(attempt: dict[str, Any], secret: str) -> bool:
    expected = hmac.new(secret.encode(), attempt["body"], hashlib.md5).hexdigest()
    return hmac.compare_digest(expected, attempt["headers"]["X-Patreon-Signature"])


def events(attempts: list[dict[str, Any]]) -> list[str]:
    return [a["headers"]["X-Patreon-Event"] for a in attempts]


def hook_attributes(live: LiveSandbox, hook_id: str) -> dict[str, Any]:
    hooks = live.api("GET", "/webhooks?fields%5Bwebhook%5D=paused,num_consecutive_times_failed").json()
    return next(h["attributes"] for h in hooks["data"] if h["id"] == hook_id)


def test_signed_delivery_pause_after_failures_and_resend(live, receiver):
    created = live.api(
        "POST",
        "/webhooks",
        json={
            "data": {
                "type": "webhook",
                "attributes": {
                    "triggers": ["members:create", "members:pledge:create", "members:update"],
                    "uri": f"{receiver.url}/hook",
                },
                "relationships": {"campaign": {"data": {"type": "campaign", "id": "1001"}}},
            }
        },
    )
    assert created.status_code == 201, created.text
    hook_id = created.json()["data"]["id"]
    secret = created.json()["data"]["attributes"]["secret"]

    member = live.control("POST", "/members", {"email": "live-fan@example.com", "tier_id": "3002"})
    hook = wait_for(
        lambda: len(receiver.delivered("/hook")) == 2 and receiver.delivered("/hook"), 10, "2 deliveries"
    )
    assert events(hook) == ["members:create", "members:pledge:create"]
    assert all(signed_by(a, secret) for a in hook)
    assert not any(signed_by(a, SEEDED_SECRET) for a in hook)
    assert json.loads(hook[0]["body"])["data"]["id"] == member["id"]
    seeded = wait_for(
        lambda: len(receiver.delivered("/seeded")) == 2 and receiver.delivered("/seeded"), 10, "seeded"
    )
    assert all(signed_by(a, SEEDED_SECRET) for a in seeded)

    # The receiver breaks: the upgrade's event is retried, then the webhook pauses.
    receiver.status["/hook"] = 500
    live.control("POST", f"/members/{member['id']}/upgrade", {})
    wait_for(
        lambda: hook_attributes(live, hook_id) == {"paused": True, "num_consecutive_times_failed": 2},
        10,
        "the webhook to pause after 2 failures",
    )
    assert receiver.failed("/hook") == 2
    assert len(receiver.delivered("/hook")) == 2  # nothing lost, nothing out of order yet

    # Fixed, unpaused with the string "false" as some clients send it: the queue resends.
    receiver.status["/hook"] = 200
    resumed = live.api(
        "PATCH",
        f"/webhooks/{hook_id}",
        json={"data": {"id": hook_id, "type": "webhook", "attributes": {"paused": "false"}}},
    )
    assert resumed.status_code == 200, resumed.text
    hook = wait_for(
        lambda: len(receiver.delivered("/hook")) == 3 and receiver.delivered("/hook"), 10, "resend"
    )
    assert events(hook) == ["members:create", "members:pledge:create", "members:update"]
    assert signed_by(hook[2], secret)
    upgraded = json.loads(hook[2]["body"])["data"]
    assert upgraded["attributes"]["currently_entitled_amount_cents"] == 1000
    assert hook_attributes(live, hook_id) == {"paused": False, "num_consecutive_times_failed": 0}
    deliveries = live.control("GET", "/state")["deliveries"]
    assert deliveries["failed"] == 2 and deliveries["queued"] == 0


def test_a_request_without_user_agent_is_refused(live):
    connection = http.client.HTTPConnection("127.0.0.1", live.port, timeout=5)
    connection.request("GET", "/api/oauth2/v2/identity", headers={"Authorization": f"Bearer {CREATOR_TOKEN}"})
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == 403
    assert body["errors"][0]["code_name"] == "Forbidden"


def test_logs_carry_no_token_code_secret_or_email(live):
    authorize = requests.post(
        f"{live.url}/oauth2/authorize",
        data={
            "response_type": "code",
            "client_id": "sandbox-client-id",
            "redirect_uri": "http://127.0.0.1:6969/auth/patreon/callback",
            "scope": "identity identity[email]",
            "state": "live-state",
            "user_id": "2",
            "decision": "allow",
        },
        allow_redirects=False,
        timeout=5,
    )
    assert authorize.status_code == 302
    code = parse_qs(urlsplit(authorize.headers["Location"]).query)["code"][0]
    token = requests.post(
        f"{live.url}/api/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": "sandbox-client-id",
            "client_secret": "sandbox-client-secret",
            "redirect_uri": "http://127.0.0.1:6969/auth/patreon/callback",
        },
        headers=UA,
        timeout=5,
    ).json()
    me = live.api("GET", "/identity?fields%5Buser%5D=email", token=token["access_token"]).json()
    email = me["data"]["attributes"]["email"]
    secrets_ = [hook["secret"] for hook in live.control("GET", "/webhooks")["webhooks"]]
    logs = live.logs()
    assert "GET /api/oauth2/v2/identity 200" in logs
    for needle in [
        code,
        token["access_token"],
        token["refresh_token"],
        CREATOR_TOKEN,
        "sandbox-creator-refresh-token",
        "sandbox-client-secret",
        email,
        "live-fan@example.com",
        *secrets_,
    ]:
        assert needle not in logs, "a secret value reached the log"


def test_sigterm_lets_the_in_flight_request_finish(live):
    live.control("POST", "/faults", {"path": "/api/oauth2/v2/identity", "latency_ms": 1000, "count": 1})
    before = live.control("GET", "/state")["delayed"]
    outcome: dict[str, Any] = {}

    def slow_call() -> None:
        try:
            outcome["status"] = live.api("GET", "/identity").status_code
        except requests.RequestException as ex:
            outcome["error"] = ex

    caller = threading.Thread(target=slow_call)
    caller.start()
    wait_for(lambda: live.control("GET", "/state")["delayed"] > before, 5, "the slow request to start")
    live.process.send_signal(signal.SIGTERM)
    caller.join(10)
    assert outcome == {"status": 200}
    assert live.process.wait(10) == 0
    assert "sandbox stopped" in live.logs()
