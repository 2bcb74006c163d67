"""A worker on "another host": tcp:// on loopback with ZeroMQ CURVE (wire.curve).

Keys come from the documented command (``python -m wire.keys generate DIR``); web and
the watchdog use the allowed client pair. A client with no key, or with a key that is
not on the allow-list, gets no answer, and the worker's log says why in one line.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.stack import Stack, body, free_port, wait_for
from wire.client import Pinger
from wire.curve import ClientOptions, client_options, generate

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    folder = tmp_path_factory.mktemp("curve") / "keys"
    out = subprocess.run(
        [sys.executable, "-m", "wire.keys", "generate", str(folder)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "server_public" in out.stdout
    again = subprocess.run([sys.executable, "-m", "wire.keys", "generate", str(folder)], capture_output=True)
    assert again.returncode == 1  # never overwrites keys in use
    return folder


@pytest.fixture(scope="module")
def stack(keys):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    env = {"PATREON_WORKER_ENDPOINT": endpoint, "PATREON_WORKER_CURVE_DIR": str(keys)}
    with Stack(env, name="pb-curve") as running:
        running.endpoint = endpoint
        yield running


def test_web_reaches_the_worker_over_tcp_with_the_allowed_key(stack):
    health = body(stack.get("/api/patreon/health"))
    assert health["status"] == "healthy"
    assert "CURVE on: 1 allowed client key(s)" in stack.log_text("worker")
    # The watchdog pings with the client pair too: it never mistakes CURVE for a hang.
    assert "is hung" not in stack.log_text("watchdog")


def test_the_allowed_key_gets_a_pong(stack, keys):
    pinger = Pinger(stack.endpoint, curve=client_options(keys))
    try:
        assert pinger(2.0)["pong"] is True
    finally:
        pinger.close()


def test_a_client_with_no_key_gets_no_answer_and_one_clear_log_line(stack):
    pinger = Pinger(stack.endpoint)  # plain NULL mechanism
    try:
        assert pinger(1.0) is None
    finally:
        pinger.close()
    wait_for(
        lambda: "CURVE handshake failed (a client with no CURVE key" in stack.log_text("worker"),
        10,
        what="the worker's refusal line",
    )


def test_a_client_with_a_wrong_key_gets_no_answer_and_one_clear_log_line(stack, keys, tmp_path):
    stranger = generate(tmp_path / "stranger")  # a pair of its own, not on the allow-list
    wrong = client_options(tmp_path / "stranger")
    # It knows the real server's public key (public keys are no secret), so the
    # handshake reaches the authenticator, which refuses its key.
    wrong = ClientOptions(wrong.public, wrong.secret, client_options(keys).server_public)
    pinger = Pinger(stack.endpoint, curve=wrong)
    try:
        assert pinger(1.0) is None
    finally:
        pinger.close()
    assert stranger["client_public"].exists()
    wait_for(
        lambda: "refused a worker client: its CURVE key" in stack.log_text("worker"),
        10,
        what="the authenticator's refusal line",
    )
    line = next(line for line in stack.log_text("worker").splitlines() if "its CURVE key" in line)
    assert "is not in" in line and "allowed_clients" in line
    assert wrong.secret.decode() not in stack.log_text("worker")
