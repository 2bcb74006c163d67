"""Log forging (issue 16, finding 4): a request path with CR, LF, NUL or another
control character must not split or forge a line in web's or the sandbox's log.

The processes' own logging set-up is used (``settings.logs.configure_logging`` for
web, ``sandbox.__main__._configure_logging`` for the sandbox), writing to a buffer
in place of stderr, and the apps are driven in memory."""

from __future__ import annotations

import logging
from pathlib import Path

import falcon.testing
import pytest

from sandbox import __main__ as sandbox_main
from sandbox.app import create_app as create_sandbox
from settings.config import load_config
from settings.logs import configure_logging
from tests.sandbox.conftest import test_settings
from web.app import create_app
from wire.client import Liveness, WorkerClient

FORGED = "2026-12-01 22:00:00,000 web INFO web.webhooks [-] 📨 Patreon webhook received: members:create id=7"
PATH = "/api/patreon/x\r\n" + FORGED + "\x00\x1b[2J\x85\u2028end"


class Captured:
    def __init__(self, capsys):
        self.capsys = capsys

    def getvalue(self) -> str:
        return self.capsys.readouterr().err


@pytest.fixture
def captured(capsys):
    # The set-ups write to sys.stderr as it is when they run: pytest's capture, here.
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield Captured(capsys)
    root.handlers[:], root.level = saved


def assert_one_escaped_line(text: str, method_line: str) -> None:
    lines = [line for line in text.splitlines() if line]
    access = [line for line in lines if method_line in line]
    assert len(access) == 1, text
    assert not any(line.startswith(FORGED) for line in lines), text
    for char in "\r\x00\x1b\x85\u2028":
        assert char not in text
    assert "x\\r\\n2026-12-01" in access[0]


def test_web_access_log_escapes_control_characters(captured):
    configure_logging("web")
    config = load_config({}, Path("/nonexistent/.env"))
    worker = WorkerClient("inproc://no-worker-here", liveness=Liveness())
    client = falcon.testing.TestClient(create_app(config, worker))
    assert client.simulate_get(PATH).status_code == 404
    assert_one_escaped_line(captured.getvalue(), "GET /api/patreon/x")


def test_sandbox_access_log_escapes_control_characters(captured):
    sandbox_main._configure_logging()
    client = falcon.testing.TestClient(create_sandbox(test_settings()))
    client.simulate_get(PATH.replace("/api/patreon", "/api/oauth2/v2"))
    assert_one_escaped_line(captured.getvalue(), "GET /api/oauth2/v2/x")


def test_a_traceback_keeps_its_line_breaks_and_the_message_is_escaped(captured):
    configure_logging("web")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("t").exception("failed on %s", "a\nb")
    text = captured.getvalue()
    assert "failed on a\\nb" in text
    assert "Traceback (most recent call last):\n" in text


def test_escape_controls():
    from settings.logs import escape_controls

    assert escape_controls("a\r\nb\tc\x00d\x7f\x9f\u2028é") == "a\\r\\nb\\tc\\x00d\\x7f\\x9f\\u2028é"
