"""Which pages may open live connections from a browser (their ``Origin``).

* the live program's own origin, and the site's behind nginx (``X-Forwarded-Host``/
  ``-Proto``, as engine.io's default does);
* web's own pages on the same host (web's ``PORT``): the demo page and any page web
  serves reach live on its own port when there is no nginx; they are the same site,
  so the session cookie goes along and is honoured (with credentials);
* the origins in ``LIVE_CORS_ORIGINS`` (or any, with ``*``): other sites, which
  authorize with a subscribe token, never a cookie (no credentials).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit


def _hostname(host_header: str) -> str:
    return (urlsplit(f"//{host_header}").hostname or "") if host_header else ""


class AllowedOrigins:
    def __init__(self, configured: tuple[str, ...], web_port: int):
        self.configured = configured
        self.web_port = web_port

    @property
    def any(self) -> bool:
        return "*" in self.configured

    def is_web_page(self, origin: str, host_header: str | None) -> bool:
        """An origin of web's pages on the host this request was sent to."""
        try:
            parts = urlsplit(origin)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return False
        host = _hostname(host_header or "")
        return parts.scheme in ("http", "https") and bool(host) and parts.hostname == host and port == self.web_port

    def engineio_allows(self, origin: str, environ: Mapping[str, Any]) -> bool:
        """python-engineio's ``cors_allowed_origins`` callable."""
        if self.any or origin in self.configured:
            return True
        host = environ.get("HTTP_HOST", "")
        scheme = environ.get("wsgi.url_scheme", "http")
        own = {f"{scheme}://{host}"}
        if "HTTP_X_FORWARDED_HOST" in environ or "HTTP_X_FORWARDED_PROTO" in environ:
            forwarded_scheme = environ.get("HTTP_X_FORWARDED_PROTO", scheme).split(",")[0].strip()
            forwarded_host = environ.get("HTTP_X_FORWARDED_HOST", host).split(",")[0].strip()
            own.add(f"{forwarded_scheme}://{forwarded_host}")
        return origin in own or self.is_web_page(origin, host)


class WebPageCors:
    """Falcon (ASGI) middleware: SSE for web's own pages, with credentials (the session
    cookie). Other origins are Falcon's ``CORSMiddleware``'s, without credentials."""

    def __init__(self, origins: AllowedOrigins):
        self._origins = origins

    async def process_response(self, req, resp, resource, req_succeeded) -> None:
        origin = req.get_header("Origin")
        if origin and self._origins.is_web_page(origin, req.get_header("Host")):
            resp.set_header("Access-Control-Allow-Origin", origin)
            resp.set_header("Access-Control-Allow-Credentials", "true")
            resp.append_header("Vary", "Origin")
