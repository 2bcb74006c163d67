"""A browser for integration tests: a ``requests.Session`` (cookie jar, real redirects)
that logs in with Patreon through the sandbox's consent page, as a person would."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

import requests

from harness.stack import Stack

TIMEOUT_S = 10
_FORM = re.compile(r'<form method="post" action="([^"]+)">(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


class Browser:
    def __init__(self, stack: Stack):
        self.stack = stack
        self.http = requests.Session()
        self.http.headers["Accept"] = "text/html,application/json;q=0.9,*/*;q=0.8"

    @property
    def cookie(self) -> str | None:
        return self.http.cookies.get("pb_session")

    def get(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", TIMEOUT_S)
        kw.setdefault("headers", {"Accept": "application/json"})
        return self.http.get(self.stack.url(path), **kw)

    def post(self, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", TIMEOUT_S)
        return self.http.post(self.stack.url(path), **kw)

    def consent(self, consent_page: requests.Response, user_id: str, decision: str = "allow") -> str:
        """Answer the sandbox's consent page; returns where Patreon sends the browser back."""
        match = _FORM.search(consent_page.text)
        assert match, f"no consent form in {consent_page.url}: {consent_page.text[:300]!r}"
        action, inner = match.groups()
        fields = {name: html.unescape(value) for name, value in _HIDDEN.findall(inner)}
        fields.update(user_id=user_id, decision=decision)
        target = self.stack.sandbox_url + html.unescape(action)
        answer = self.http.post(target, data=fields, allow_redirects=False, timeout=TIMEOUT_S)
        assert answer.status_code == 302, answer.text[:300]
        return answer.headers["Location"]

    def authorize(self, user_id: str, decision: str = "allow", path: str = "/auth/patreon") -> str:
        """Start a login and consent; returns our callback URL (with code/error and state)."""
        page = self.http.get(self.stack.url(path), timeout=TIMEOUT_S)  # 302 -> the consent page
        assert page.status_code == 200 and page.url.startswith(self.stack.sandbox_url), page.url
        return self.consent(page, user_id, decision)

    def login(self, user_id: str) -> requests.Response:
        """The whole flow, following every redirect back to the post-login page."""
        callback = self.authorize(user_id)
        return self.http.get(callback, timeout=TIMEOUT_S)


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
