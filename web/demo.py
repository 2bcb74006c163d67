"""The demo page: a place for a newcomer to look at, served by the bridge itself.

    GET /                     302 to /demo (only while the demo page is on)
    GET /demo                 the page: log in with Patreon, the user, their
                              memberships and tiers, a creator's live events
    GET /demo/static/{name}   its files (web/static/), a fixed list

On by default in sandbox mode, off in live mode unless ``DEMO_PAGE=true``. Plain HTML
and JavaScript calling the bridge's own JSON API from the same origin (the session
cookie does the rest), plus the official socket.io browser client shipped in
web/static/ (no CDN, no build step: it works offline).

Live events come from the live program (``live/``): behind nginx on the page's own
origin, without it on the page's host at ``LIVE_PORT``. The page carries both ports
(``data-live-port``, ``data-web-port``): opened on web's own port it has no proxy in
front, so it goes to live's port; otherwise to its own origin. The page's CSP lets it connect there and nowhere else; the live
program takes web's origin on the same host, with the session cookie (same site).

Every file is read once at start-up and answered with its content type, an ETag and
``Cache-Control: no-cache``: a browser revalidates (304) instead of running a stale
page after an upgrade.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import falcon

from web.errors import ApiError
from wire.codes import NOT_FOUND

STATIC_DIR = Path(__file__).resolve().parent / "static"
PAGE = "demo.html"
CONTENT_TYPES = {
    "demo.html": "text/html; charset=utf-8",
    "demo.css": "text/css; charset=utf-8",
    "demo.js": "text/javascript; charset=utf-8",
    "socket.io.min.js": "text/javascript; charset=utf-8",
}
# The page's own scripts and styles, its own API, and the live program (``{live}``).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self' {live}; "
    "img-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PORTS_PLACEHOLDER = b'data-live-port="" data-web-port=""'


def live_origins(req: falcon.Request, live_port: int) -> str:
    """The live program's origins as the page's browser reaches it without nginx."""
    secure = req.scheme == "https"
    host = req.host  # the page's host name, without its port
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    return f"{'https' if secure else 'http'}://{host}:{live_port} {'wss' if secure else 'ws'}://{host}:{live_port}"


class StaticFile:
    def __init__(self, name: str, ports: tuple[int, int] | None = None):
        self.name = name
        self.body = (STATIC_DIR / name).read_bytes()
        self.live_port = None
        if ports is not None:  # (live's, web's): the page tells them apart (demo.js liveUrl)
            self.live_port, web_port = ports
            filled = f'data-live-port="{self.live_port}" data-web-port="{web_port}"'.encode()
            self.body = self.body.replace(PORTS_PLACEHOLDER, filled, 1)
        self.content_type = CONTENT_TYPES[name]
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:32] + '"'

    def answer(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.set_header("Cache-Control", "no-cache")
        resp.set_header("ETag", self.etag)
        resp.set_header("X-Content-Type-Options", "nosniff")
        if self.name.endswith(".html"):
            live = live_origins(req, self.live_port) if self.live_port is not None else ""
            resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY.format(live=live))
            resp.set_header("Referrer-Policy", "no-referrer")
        matches = req.get_header("If-None-Match") or ""
        if self.etag in [tag.strip() for tag in matches.split(",")]:
            resp.status = falcon.HTTP_304
            return
        resp.content_type = self.content_type
        resp.data = self.body


class PageResource:
    def __init__(self, page: StaticFile):
        self.page = page

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        # A query is ignored (the page reads none): ?utm=... or a cache-buster is harmless.
        self.page.answer(req, resp)


class StaticResource:
    def __init__(self, files: dict[str, StaticFile]):
        self.files = files

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        static = self.files.get(name)
        if static is None:
            raise ApiError(404, NOT_FOUND, "No such file")
        static.answer(req, resp)


class RootResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_302
        resp.location = "/demo"


def add_routes(app: falcon.App, live_port: int, web_port: int) -> None:
    files = {name: StaticFile(name, (live_port, web_port) if name == PAGE else None) for name in CONTENT_TYPES}
    app.add_route("/", RootResource())
    app.add_route("/demo", PageResource(files[PAGE]))
    app.add_route("/demo/static/{name}", StaticResource({k: v for k, v in files.items() if k != PAGE}))
