"""Every stable error code is defined once, documented with its status, and mapped
once at each boundary: Patreon client -> wire (worker/errors.py) -> HTTP (web/errors.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import falcon
import falcon.testing
import pytest

from live import codes as live_codes
from live_events import codes as shared_codes
from patreon_client.errors import AuthorizationRefused, InvalidGrant, RateLimited, UpstreamError
from web import codes as web_codes
from web import errors
from wire import codes as wire_codes
from wire.client import WorkerCallError
from worker.errors import wire_error

REPO = Path(__file__).resolve().parent.parent.parent
ALL_CODES = {**wire_codes.CODES, **web_codes.CODES, **live_codes.CODES, **shared_codes.CODES}
CODE_PACKAGES = ("web", "worker", "wire", "store", "patreon_client", "watchdog_listener", "live", "live_events")


def documented_codes() -> dict[str, tuple[int, str]]:
    text = (REPO / "docs" / "api.md").read_text()
    rows = re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \| (\d{3}) \| ([^|]+) \|$", text, re.M)
    return {name: (int(status), meaning.strip()) for name, status, meaning in rows}


def test_the_code_tables_are_disjoint_and_named_as_their_value():
    tables = [set(m.CODES) for m in (wire_codes, web_codes, live_codes, shared_codes)]
    assert sum(len(t) for t in tables) == len(set().union(*tables))  # each code defined once
    for module in (wire_codes, web_codes, live_codes, shared_codes):
        for name in module.CODES:
            assert getattr(module, name) == name


def test_the_docs_list_every_code_with_its_status_and_meaning():
    documented = documented_codes()
    assert len(documented) >= 60  # the tables were found
    assert sorted(documented) == sorted(ALL_CODES)
    for name, code in ALL_CODES.items():
        assert documented[name] == (code.status, code.meaning), name


def code_literals(path: Path) -> list[tuple[int, str]]:
    """String constants (not docstrings) in a module that spell a code."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    exported = {  # __all__ lists names, not codes
        id(element)
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__all__"]
        for element in getattr(node.value, "elts", [])
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value in ALL_CODES
        and id(node) not in docstrings | exported
    ]


def test_no_module_spells_a_code_outside_the_codes_modules():
    spelled = {}
    for package in CODE_PACKAGES:
        for path in (REPO / package).glob("*.py"):
            if path.name != "codes.py" and (found := code_literals(path)):
                spelled[str(path.relative_to(REPO))] = found
    assert spelled == {}


def test_the_scan_finds_a_spelled_code(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""RATE_LIMITED in a docstring is prose."""\nCODE = "RATE_LIMITED"\n')
    assert code_literals(sample) == [(2, "RATE_LIMITED")]


@pytest.mark.parametrize(
    ("error", "code", "status", "retry_after"),
    [
        (UpstreamError("Patreon answered 503"), "PATREON_UPSTREAM_ERROR", 502, None),
        (RateLimited("slow down", retry_after=7), "RATE_LIMITED", 429, 7),
        (AuthorizationRefused("refused"), "PATREON_AUTH_FAILED", 401, None),
        (InvalidGrant("invalid_grant"), "PATREON_AUTH_FAILED", 401, None),
    ],
)
def test_patreon_errors_become_wire_errors_once(error, code, status, retry_after):
    wire = wire_error(error)
    assert (wire.code, wire.status, wire.retry_after, wire.message) == (
        code,
        status,
        retry_after,
        error.message,
    )
    assert wire_codes.status_of(code) == status


def client_seeing(exception: Exception) -> falcon.testing.Result:
    app = falcon.App()
    errors.install(app)

    class Raises:
        def on_get(self, req, resp):
            raise exception

    app.add_route("/x", Raises())
    return falcon.testing.TestClient(app).simulate_get("/x")


@pytest.mark.parametrize("code", sorted(wire_codes.CODES))
def test_every_wire_code_reaches_http_with_its_status(code):
    status = wire_codes.CODES[code].status
    result = client_seeing(WorkerCallError({"code": code, "message": "m", "status": status}))
    assert result.status_code == status
    assert result.json == {"success": False, "error": "m", "code": code}


def test_a_wire_retry_after_becomes_a_retry_after_header():
    result = client_seeing(
        WorkerCallError({"code": "RATE_LIMITED", "message": "m", "status": 429, "retry_after": 7})
    )
    assert (result.status_code, result.headers["Retry-After"]) == (429, "7")


def test_an_action_error_takes_its_status_from_the_code_table():
    from wire.protocol import ActionError

    assert ActionError("MEMBER_STATE_NOT_FOUND", "m").status == 404
    assert ActionError("INVALID_DATA", "m").status == 400
    assert ActionError("RATE_LIMITED", "m", status=503).status == 503  # an explicit status wins
