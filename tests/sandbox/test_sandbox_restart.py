"""Issue 14: the sandbox keeps its state across its own restart (DATA_DIR's
sandbox-state/), so a restart never strands the bridge's sessions or its rotated
creator pair. Real processes: start, change things, stop (SIGTERM, and SIGKILL to
show every change is already on disk), start again on the same state."""

from __future__ import annotations

import json
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.stack import wait_for
from tests.contract.sandbox_process import (
    CREATOR_REFRESH,
    CREATOR_TOKEN,
    REDIRECT_URI,
    SandboxProcess,
)


@pytest.fixture
def sandbox(tmp_path):
    process = SandboxProcess(tmp_path)
    yield process
    process.stop()


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_rotated_creator_pair_and_session_token_survive_a_restart(sandbox, stop_signal):
    sandbox.start()
    # The bridge's creator pair is rotated once (what issue 14 saw break).
    rotated = sandbox.token(grant_type="refresh_token", refresh_token=CREATOR_REFRESH)
    assert rotated.status_code == 200, rotated.text
    creator = rotated.json()
    # A browser session: a patron logs in.
    code = sandbox.authorize("identity identity[email] identity.memberships", user_id="2")
    session = sandbox.token(grant_type="authorization_code", code=code, redirect_uri=REDIRECT_URI).json()
    member = sandbox.control("POST", "/members", {"email": "kept@example.com", "tier_id": "3002"})
    before = sandbox.control("GET", "/state")

    assert sandbox.stop(stop_signal) is not None
    sandbox.start()

    after = sandbox.control("GET", "/state")
    assert after["restored"] is True
    assert (after["members"], after["users"]) == (before["members"], before["users"])
    assert sandbox.api("GET", "/campaigns", token=creator["access_token"]).status_code == 200
    me = sandbox.api("GET", "/identity?fields%5Buser%5D=email", token=session["access_token"])
    assert me.status_code == 200 and me.json()["data"]["id"] == "2"
    assert sandbox.control("GET", f"/members/{member['id']}")["email"] == "kept@example.com"
    # The initial creator token was rotated away before the restart: still dead.
    assert sandbox.token(grant_type="refresh_token", refresh_token=CREATOR_REFRESH).status_code == 401
    assert sandbox.api("GET", "/campaigns", token=CREATOR_TOKEN).status_code == 200  # access stays valid
    again = sandbox.token(grant_type="refresh_token", refresh_token=creator["refresh_token"])
    assert again.status_code == 200, again.text
    assert (
        sandbox.token(grant_type="refresh_token", refresh_token=session["refresh_token"]).status_code == 200
    )
    # New ids continue, never repeat.
    newer = sandbox.control("POST", "/members", {})
    assert int(newer["user_id"]) > int(member["user_id"])
    assert sorted(p.name for p in sandbox.state_dir.iterdir()) == [
        "tokens.json",
        "webhooks.json",
        "world.json",
    ]
    for path in sandbox.state_dir.iterdir():
        json.loads(path.read_text())  # whole JSON, no temp file left


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes]] = []
        self.status = 503
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.bodies.append((self.headers["X-Patreon-Event"], body))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_queued_deliveries_and_the_failure_count_survive_a_restart(tmp_path):
    receiver = Receiver()
    sandbox = SandboxProcess(
        tmp_path,
        {
            "SANDBOX_WEBHOOK_URI": receiver.url,
            "SANDBOX_WEBHOOK_RETRY_S": "0.3",
            "SANDBOX_WEBHOOK_PAUSE_AFTER": "100",
            "SANDBOX_WEBHOOK_TIMEOUT_S": "2",
        },
    )
    try:
        sandbox.start()
        member = sandbox.control("POST", "/members", {"tier_id": "3001"})
        wait_for(
            lambda: sandbox.control("GET", "/webhooks")["webhooks"][0]["num_consecutive_times_failed"] >= 2,
            10,
            what="two failed attempts",
        )
        sandbox.stop()
        hook = json.loads((sandbox.state_dir / "webhooks.json").read_text())["webhooks"]["hooks"][0]
        assert len(hook["queue"]) == 2 and hook["num_consecutive_times_failed"] >= 2
        receiver.status = 200
        sandbox.start()
        wait_for(lambda: sandbox.control("GET", "/state")["deliveries"]["queued"] == 0, 10, what="the resend")
        delivered = [event for event, _ in receiver.bodies[-2:]]
        assert delivered == ["members:create", "members:pledge:create"]
        assert json.loads(receiver.bodies[-1][1])["data"]["id"] == member["id"]
    finally:
        sandbox.stop()
        receiver.server.shutdown()


def test_other_settings_start_from_the_seed(tmp_path):
    first = SandboxProcess(tmp_path).start()
    first.control("POST", "/members", {})
    first.stop()
    second = SandboxProcess(tmp_path, {"SANDBOX_SEED": "7"})
    try:
        second.start()
        state = second.control("GET", "/state")
        assert state["restored"] is False and state["members"] == 30
        assert "made with other settings" in second.logs()
    finally:
        second.stop()


def test_a_failed_save_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    """Write temp + fsync + rename: a crash before the rename keeps the old file."""
    from sandbox import persistence
    from sandbox.app import build
    from sandbox.settings import SandboxSettings

    sandbox = build(SandboxSettings(members=5, state_dir=tmp_path))
    path = tmp_path / "world.json"
    saved = path.read_bytes()
    json.loads(saved)

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(persistence.os, "replace", crash)
    with pytest.raises(OSError):
        sandbox.world.add_member(sandbox.now())
    assert path.read_bytes() == saved
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json", "webhooks.json", "world.json"]


def test_a_rebuild_restores_queues_held_events_pauses_and_token_times(tmp_path, clock, transport):
    """In process, on a fake clock: what a restart keeps, exactly."""
    from sandbox.app import build
    from sandbox.settings import SandboxSettings

    def start():
        return build(
            SandboxSettings(members=5, state_dir=tmp_path, webhook_retry_s=60.0),
            clock=clock,
            wall_clock=lambda: 1_750_000_000.0 + clock(),
            transport=transport,
        )

    first = start()
    hook = first.webhooks.create("sandbox-client-id", "1001", "http://127.0.0.1:9/h", ["members:update"])
    first.webhooks.add_fault("reorder", trigger="members:update")
    first.webhooks.publish("members:update", "1001", b'{"n":1}')  # held
    transport.default = 500
    first.webhooks.publish("members:update", "1001", b'{"n":2}')  # queued, then fails once
    first.webhooks.run_due()
    first.tokens.early_expiry_s = 120.0
    grant = first.tokens.refresh("sandbox-creator-refresh-token", "sandbox-client-id")
    clock.advance(30)

    second = start()
    assert second.restored
    kept = second.webhooks.get(hook.id)
    assert [e.body for e in kept.queue] == [b'{"n":2}', b'{"n":1}']  # released after n=2
    assert kept.num_consecutive_times_failed == 1
    assert kept.next_attempt_at - clock() == pytest.approx(30.0)  # 60 s retry, 30 s gone
    restored = second.tokens.lookup(grant.access_token)
    assert restored is not None and second.tokens.is_valid(restored)
    assert second.tokens.early_expiry_s == 120.0
    assert restored.issued_at == pytest.approx(clock() - 30)
    clock.advance(90)
    assert not second.tokens.is_valid(restored)  # early expiry counted from the first life
