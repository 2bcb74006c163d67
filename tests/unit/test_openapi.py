"""The OpenAPI document is true to the route table (web/app.py) and to docs/api.md's
endpoint table: the same operations, no more, no fewer; and it is served."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import falcon
import falcon.inspect
import falcon.testing

from settings.config import load_config
from store.database import Store
from web.app import create_app
from web.openapi import document
from wire.client import Liveness, WorkerClient

REPO = Path(__file__).resolve().parents[2]
METHODS = {"get", "post", "patch", "delete", "put"}


def app_with_every_route() -> falcon.App:
    with tempfile.TemporaryDirectory() as folder:
        store = Store(Path(folder) / "routes.sqlite3")
        store.migrate()
        config = load_config({"BRIDGE_TEST_ACTIONS": "1", "DEMO_PAGE": "true"}, Path("/nonexistent/.env"))
        return create_app(config, WorkerClient("inproc://routes-only", liveness=Liveness()), store)


def route_table() -> set[tuple[str, str]]:
    return {
        (m.method, route.path)
        for route in falcon.inspect.inspect_routes(app_with_every_route())
        for m in route.methods
        if not m.internal
    }


def documented(skip_tags: frozenset[str] = frozenset()) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document()["paths"].items()
        for method, op in item.items()
        if method in METHODS and not skip_tags & set(op.get("tags", ()))
    }


def api_md_table() -> set[tuple[str, str]]:
    text = (REPO / "docs" / "api.md").read_text()
    section = text[text.index("### Endpoints") : text.index("## Errors")]
    rows = set()
    for methods, path in re.findall(r"^\| ([A-Z, ]+) \| `([^`]+)`", section, re.M):
        for method in methods.split(","):
            rows.add((method.strip(), path.split("?")[0]))
    return rows


def test_the_document_has_every_route_and_nothing_else():
    assert documented() == route_table()


def test_the_document_matches_the_docs_endpoint_table():
    # The demo page is described in the README, not in the API reference.
    assert documented(frozenset({"demo"})) == api_md_table()


def test_it_is_openapi_3_1_and_every_operation_has_the_error_shape():
    doc = document()
    assert doc["openapi"] == "3.1.0"
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["responses"]["default"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }, (method, path)
            for name in re.findall(r"{(\w+)}", path):
                assert any(p["in"] == "path" and p["name"] == name for p in op.get("parameters", [])), (
                    path,
                    name,
                )


def test_it_is_served():
    client = falcon.testing.TestClient(app_with_every_route())
    result = client.simulate_get("/api/patreon/openapi.json")
    assert result.status_code == 200 and result.json == document()
