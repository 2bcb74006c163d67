"""The demo page's routes: on in sandbox mode, off in live mode unless asked for; its
files with their content types and cache headers; the default post-login landing."""

from __future__ import annotations

from pathlib import Path

import falcon.testing
import pytest

from settings.config import load_config
from web import demo
from web.app import create_app
from wire.client import Liveness, WorkerClient

NO_DOTENV = Path("/nonexistent/.env")
LIVE = {
    "PATREON_CLIENT_ID": "live-id",
    "PATREON_CLIENT_SECRET": "live-secret",
    "PATREON_REDIRECT_URI": "https://bridge.example.com/auth/patreon/callback",
}


def client_for(env: dict[str, str]) -> falcon.testing.TestClient:
    config = load_config(env, NO_DOTENV)
    return falcon.testing.TestClient(create_app(config, WorkerClient("inproc://none", liveness=Liveness())))


@pytest.fixture
def client():
    return client_for({})


def test_sandbox_mode_serves_the_page_and_lands_there_after_login():
    config = load_config({}, NO_DOTENV)
    assert (config.mode, config.demo_page, config.post_login_url) == ("sandbox", True, "/demo")
    page = client_for({}).simulate_get("/demo")
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert 'href="/auth/patreon"' in page.text and "/demo/static/socket.io.min.js" in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]


def test_live_mode_has_no_demo_page_unless_turned_on():
    config = load_config(LIVE, NO_DOTENV)
    assert (config.mode, config.demo_page, config.post_login_url) == ("live", False, "/")
    off = client_for(LIVE)
    for path in ("/demo", "/demo/static/demo.js", "/"):
        result = off.simulate_get(path)
        assert result.status_code == 404 and result.json["code"] == "NOT_FOUND", path
    on = load_config({**LIVE, "DEMO_PAGE": "true"}, NO_DOTENV)
    assert (on.demo_page, on.post_login_url) == (True, "/demo")
    assert client_for({**LIVE, "DEMO_PAGE": "true"}).simulate_get("/demo").status_code == 200
    # Sandbox mode can turn it off, and a POST_LOGIN_URL of one's own wins.
    assert client_for({"DEMO_PAGE": "false"}).simulate_get("/demo").status_code == 404
    assert load_config({"POST_LOGIN_URL": "/mine"}, NO_DOTENV).post_login_url == "/mine"


def test_root_sends_a_newcomer_to_the_demo_page(client):
    result = client.simulate_get("/")
    assert result.status_code == 302 and result.headers["Location"] == "/demo"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("demo.js", "text/javascript; charset=utf-8"),
        ("demo.css", "text/css; charset=utf-8"),
        ("socket.io.min.js", "text/javascript; charset=utf-8"),
    ],
)
def test_static_files_have_their_type_an_etag_and_revalidate(client, name, content_type):
    first = client.simulate_get(f"/demo/static/{name}")
    assert first.status_code == 200
    assert first.headers["Content-Type"] == content_type
    assert first.headers["Cache-Control"] == "no-cache"
    assert first.headers["X-Content-Type-Options"] == "nosniff"
    assert first.content == (demo.STATIC_DIR / name).read_bytes()
    etag = first.headers["ETag"]
    again = client.simulate_get(f"/demo/static/{name}", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    stale = client.simulate_get(f"/demo/static/{name}", headers={"If-None-Match": '"old"'})
    assert stale.status_code == 200 and stale.content == first.content


def test_the_shipped_socketio_client_is_the_recorded_official_file():
    text = (demo.STATIC_DIR / "socket.io.min.js").read_text()
    assert text.startswith("/*!\n * Socket.IO v4.8.4\n")
    readme = (demo.STATIC_DIR / "README.md").read_text()
    assert "socket.io-client 4.8.4" in readme
    assert (demo.STATIC_DIR / "socket.io.LICENSE").read_text().startswith("The MIT License")


@pytest.mark.parametrize(
    "path", ["/demo/static/missing.js", "/demo/static/..%2fapp.py", "/demo/static/README.md"]
)
def test_only_the_listed_files_are_served(client, path):
    result = client.simulate_get(path)
    assert result.status_code == 404 and result.json["code"] == "NOT_FOUND"


def test_wrong_methods_are_json_405(client):
    for path in ("/demo", "/demo/static/demo.js", "/"):
        result = client.simulate_post(path)
        assert result.status_code == 405 and result.json["code"] == "METHOD_NOT_ALLOWED", path


def test_the_page_points_at_the_live_program_and_its_csp_allows_only_that(client):
    page = client.simulate_get("/demo", headers={"Host": "127.0.0.1:6969"})
    assert 'data-live-port="6971" data-web-port="6969"' in page.text  # the defaults: live without nginx
    csp = page.headers["Content-Security-Policy"]
    assert "connect-src 'self' http://127.0.0.1:6971 ws://127.0.0.1:6971;" in csp
