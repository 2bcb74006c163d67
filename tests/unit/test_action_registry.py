"""One action = one declaration (wire.actions) + one marked handler: the registry,
the worker's handlers and the docs' table agree."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from settings.config import load_config
from wire import actions, protocol
from worker.actions import PingInfo, build_registry

REPO = Path(__file__).resolve().parent.parent.parent
NO_ENV_FILE = Path("/nonexistent/.env")


def documented_actions() -> dict[str, tuple[str, str, str, str]]:
    """The rows of the action table in docs/api.md: name -> (timeout, retried, request, reply)."""
    text = (REPO / "docs" / "api.md").read_text()
    rows = re.findall(r"^\| `([a-z._]+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", text, re.M)
    return {name: tuple(cell.strip() for cell in cells) for name, *cells in rows}


def request_fields(spec: actions.ActionSpec) -> str:
    names = [
        field.name + ("?" if field.default is not dataclasses.MISSING else "")
        for field in dataclasses.fields(spec.request)
    ]
    return ", ".join(names) or "—"


def test_the_docs_table_lists_every_action_as_declared():
    documented = documented_actions()
    assert len(documented) >= 17  # the table was found
    assert sorted(documented) == sorted(actions.ACTIONS)
    for name, spec in actions.ACTIONS.items():
        timeout, retried, request, reply = documented[name]
        assert float(timeout) == spec.timeout_s, name
        assert retried == ("yes" if spec.idempotent else "no"), name
        assert request == request_fields(spec), name
        assert reply == spec.reply, name


def test_the_worker_serves_exactly_the_declared_actions(tmp_path):
    config = load_config({"DATA_DIR": str(tmp_path), "BRIDGE_TEST_ACTIONS": "1"}, NO_ENV_FILE)
    registry = build_registry(config, PingInfo(config, lambda: 0))
    assert registry.names() == sorted(actions.ACTIONS)


def test_test_only_actions_are_served_only_when_enabled(tmp_path):
    config = load_config({"DATA_DIR": str(tmp_path)}, NO_ENV_FILE)
    names = build_registry(config, PingInfo(config, lambda: 0)).names()
    assert "debug.sleep" not in names and "debug.crash" not in names
    assert sorted({*names, "debug.sleep", "debug.crash"}) == sorted(actions.ACTIONS)


def test_every_action_is_a_frozen_payload_with_a_docstring():
    for name, spec in actions.ACTIONS.items():
        assert spec.request.spec is spec and issubclass(spec.request, actions.Payload), name
        assert spec.doc, f"{name} has no message documentation"
        assert dataclasses.is_dataclass(spec.request) and spec.request.__dataclass_params__.frozen


def test_a_payload_sends_its_fields_and_leaves_out_the_ones_not_given():
    assert actions.WebhooksUpdate(webhook_id="7", paused=False).data() == {"webhook_id": "7", "paused": False}
    assert actions.MembersList(principal=actions.CREATOR, campaign_id="1", params={}).data() == {
        "principal": "creator",
        "campaign_id": "1",
        "params": {},
        "all": False,
    }
    assert actions.Ping().data() == {}


def test_an_action_cannot_be_declared_twice_or_handled_twice():
    with pytest.raises(ValueError, match="declared twice"):
        actions.action("ping", timeout_s=1.0, idempotent=True, reply="{}")(
            type("Again", (actions.Payload,), {})
        )

    class Twice:
        @protocol.handles(actions.Ping)
        def one(self, data, ctx):
            return {}

        @protocol.handles(actions.Ping)
        def two(self, data, ctx):
            return {}

    with pytest.raises(ValueError, match="two handlers"):
        protocol.marked_handlers(Twice())


def test_an_unmarked_handler_cannot_be_added():
    with pytest.raises(ValueError, match="not marked"):
        protocol.ActionRegistry().add(lambda data, ctx: {})
