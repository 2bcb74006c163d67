"""API v2 calls on behalf of a principal: tokens, one refresh on a 401, error mapping,
and following every cursor of a listing.

Patreon's answers become ``ActionError``s here, one way for every action::

    401, refresh refused      401 PATREON_REAUTH_REQUIRED (the session ends)
    401 again after a refresh 502 PATREON_TOKEN_REFUSED (the login is kept: Patreon has
                              just accepted its refresh token, issue 16)
    403                       403 PATREON_FORBIDDEN (the missing scope, when Patreon names it)
    404, 410                  404 NOT_FOUND
    400                       400 PATREON_BAD_REQUEST (Patreon's detail: a misspelt field, say)
    429                       429 RATE_LIMITED with retry_after   (from PatreonHttp)
    5xx, timeout, other       502 PATREON_UPSTREAM_ERROR
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from patreon_client.http import PatreonHttp, PatreonResponse, upstream_error
from wire.codes import NOT_FOUND, PATREON_BAD_REQUEST, PATREON_FORBIDDEN, PATREON_TOKEN_REFUSED
from wire.protocol import ActionError, Document
from worker.page_merge import merged_document, peek_cursor, scan_page
from worker.tokens import REAUTH_REQUIRED, Token, TokenStore, label

log = logging.getLogger(__name__)

API_PREFIX = "/api/oauth2/v2"
MAX_PAGES = 10_000  # a backstop: 10 million members at 1,000 a page
MAX_DETAIL_CHARS = 300

_SCOPE_IN_DETAIL = re.compile(r"'([a-z.:\[\]_]+)' scope|scope[s]? '?([a-z.:\[\]_]+)'?")


def _first_error(response: PatreonResponse) -> dict[str, Any]:
    body = response.body if isinstance(response.body, dict) else {}
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return errors[0]
    return {}


def _detail(response: PatreonResponse) -> str:
    detail = _first_error(response).get("detail")
    return detail[:MAX_DETAIL_CHARS] if isinstance(detail, str) else ""


def missing_scope(response: PatreonResponse) -> str | None:
    """The scope a 403 names, if it names one."""
    match = _SCOPE_IN_DETAIL.search(_detail(response))
    return (match.group(1) or match.group(2)) if match else None


def error_for(response: PatreonResponse) -> ActionError:
    status = response.status
    if status == 401:
        return ActionError(REAUTH_REQUIRED, "Patreon no longer accepts this login; log in again", status=401)
    if status == 403:
        scope = missing_scope(response)
        if scope:
            message = f"Patreon refused: this needs the '{scope}' scope, which was not granted"
        else:
            message = "Patreon refused access to this resource" + (
                f": {_detail(response)}" if _detail(response) else ""
            )
        return ActionError(PATREON_FORBIDDEN, message, status=403)
    if status in (404, 410):
        return ActionError(
            NOT_FOUND, "Patreon has no such resource (or it is not visible to this login)", status=404
        )
    if status == 400:
        return ActionError(
            PATREON_BAD_REQUEST,
            f"Patreon rejected the request: {_detail(response) or 'bad request'}",
            status=400,
        )
    return upstream_error(f"Patreon answered {status}")


class PatreonApi:
    def __init__(self, http: PatreonHttp, tokens: TokenStore):
        self.http = http
        self.tokens = tokens

    def call(self, principal: str, method: str, path: str, deadline: float, **kwargs: Any) -> Any:
        """One API call as ``principal``; returns the JSON body (None for a 204).
        Takes ``respond``'s keyword arguments."""
        return self.respond(principal, method, path, deadline, **kwargs).body

    def document(
        self,
        principal: str,
        path: str,
        deadline: float,
        *,
        params: Mapping[str, str] | None = None,
        token: Token | None = None,
    ) -> Document:
        """A GET whose JSON:API document is passed on as Patreon sent it (checked, not re-encoded)."""
        return Document(self.respond(principal, "GET", path, deadline, params=params, token=token).content)

    def respond(
        self,
        principal: str,
        method: str,
        path: str,
        deadline: float,
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        token: Token | None = None,
        parse_json: bool = True,
    ) -> PatreonResponse:
        """One API call as ``principal``, returning the whole checked response.

        A 401 refreshes the token (single-flight) and tries once more. With
        ``parse_json=False`` a 2xx body is left to the caller (``content``) to check.
        """
        token = token or self.tokens.current(principal, deadline)
        response = self._send(token, method, path, deadline, params, json_body, parse_json)
        if response.status == 401:
            log.info("Patreon answered 401 for %s: refreshing once", label(principal))
            token = self.tokens.refresh(principal, deadline, stale=token)
            response = self._send(token, method, path, deadline, params, json_body, parse_json)
            if response.status == 401:
                log.warning("Patreon answered 401 again with the refreshed token for %s", label(principal))
                raise ActionError(
                    PATREON_TOKEN_REFUSED,
                    "Patreon refused the token it had just refreshed; the login is kept; retry",
                    status=502,
                    retry_after=1,
                )
        if not response.ok:
            raise error_for(response)
        if parse_json and response.status != 204 and not isinstance(response.body, dict):
            raise upstream_error("Patreon answered with something that is not a JSON:API document")
        return response

    def _send(self, token, method, path, deadline, params, json_body, parse_json=True) -> PatreonResponse:
        return self.http.request(
            method,
            API_PREFIX + path,
            deadline=deadline,
            token=token.access_token,
            rate_key=token.rate_key,
            params=params,
            json_body=json_body,
            parse_json=parse_json,
        )

    def get(self, principal: str, path: str, params: Mapping[str, str], deadline: float) -> dict[str, Any]:
        return self.call(principal, "GET", path, deadline, params=params)

    def get_all(
        self, principal: str, path: str, params: Mapping[str, str], deadline: float
    ) -> dict[str, Any]:
        """Every page of a listing, merged into one document (decoded; see ``get_all_raw``)."""
        return json.loads(self.get_all_raw(principal, path, params, deadline))

    def get_all_raw(self, principal: str, path: str, params: Mapping[str, str], deadline: float) -> bytes:
        """Every page of a listing, merged into one JSON document, as bytes.

        Follows ``meta.pagination.cursors.next`` until it is absent, and stops (with
        a warning in ``meta``) when a cursor or a whole page repeats: a cursor loop
        has been seen on Patreon. ``data`` and ``included`` hold each resource once,
        as the JSON text Patreon sent (``worker.page_merge``: no re-encoding).
        """
        data: dict[tuple[str, str], str] = {}
        included: dict[tuple[str, str], str] = {}
        seen_cursors: set[str] = set()
        page_params = dict(params)
        total = None
        pages = 0
        stopped = None

        def fetch(page_params: dict[str, str]) -> bytes:
            return self.respond(
                principal, "GET", path, deadline, params=page_params, parse_json=False
            ).content

        # While a page is scanned, the next one is already being fetched (one ahead at
        # most, through the same rate limiter), when its cursor can be read off the tail.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch") as prefetcher:
            ahead: tuple[str, Future[bytes]] | None = None
            raw = fetch(page_params)
            while True:
                guess = peek_cursor(raw)
                if guess is not None and guess not in seen_cursors and pages + 1 < MAX_PAGES:
                    ahead = (guess, prefetcher.submit(fetch, {**page_params, "page[cursor]": guess}))
                page = scan_page(raw)
                pages += 1
                if page.data and all(k in data for k, _ in page.data):
                    stopped = "a page repeated an earlier page"
                    break
                for k, text in page.data:
                    data.setdefault(k, text)
                for k, text in page.included:
                    included.setdefault(k, text)
                if isinstance(page.total(), int):
                    total = page.total()
                cursor = page.cursor()
                if not cursor or not isinstance(cursor, str):
                    break
                if cursor in seen_cursors:
                    stopped = "a cursor repeated"
                    break
                if pages >= MAX_PAGES:
                    stopped = f"more than {MAX_PAGES} pages"
                    break
                seen_cursors.add(cursor)
                page_params["page[cursor]"] = cursor
                prefetched, ahead = ahead, None
                if prefetched is not None and prefetched[0] == cursor:
                    raw = prefetched[1].result()
                else:
                    raw = fetch(page_params)
            if ahead is not None:
                ahead[1].cancel()  # a guess not needed: never waited for (the pool's exit waits)
        if stopped:
            log.warning("stopped following cursors of %s after %d pages: %s", path, pages, stopped)
        meta: dict[str, Any] = {
            "pagination": {"total": total if total is not None else len(data), "cursors": {"next": None}},
            "pages": pages,
            "count": len(data),
        }
        if stopped:
            meta["stopped"] = stopped
        return merged_document(list(data.values()), list(included.values()), meta)
