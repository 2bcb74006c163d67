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

import logging
import re
from collections.abc import Mapping
from typing import Any

from patreon_client.http import PatreonHttp, PatreonResponse, upstream_error
from wire.codes import NOT_FOUND, PATREON_BAD_REQUEST, PATREON_FORBIDDEN, PATREON_TOKEN_REFUSED
from wire.protocol import ActionError, Document
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
    ) -> PatreonResponse:
        """One API call as ``principal``, returning the whole checked response.

        A 401 refreshes the token (single-flight) and tries once more.
        """
        token = token or self.tokens.current(principal, deadline)
        response = self._send(token, method, path, deadline, params, json_body)
        if response.status == 401:
            log.info("Patreon answered 401 for %s: refreshing once", label(principal))
            token = self.tokens.refresh(principal, deadline, stale=token)
            response = self._send(token, method, path, deadline, params, json_body)
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
        if response.status != 204 and not isinstance(response.body, dict):
            raise upstream_error("Patreon answered with something that is not a JSON:API document")
        return response

    def _send(self, token, method, path, deadline, params, json_body) -> PatreonResponse:
        return self.http.request(
            method,
            API_PREFIX + path,
            deadline=deadline,
            token=token.access_token,
            rate_key=token.rate_key,
            params=params,
            json_body=json_body,
        )

    def get(self, principal: str, path: str, params: Mapping[str, str], deadline: float) -> dict[str, Any]:
        return self.call(principal, "GET", path, deadline, params=params)

    def get_all(
        self, principal: str, path: str, params: Mapping[str, str], deadline: float
    ) -> dict[str, Any]:
        """Every page of a listing, merged into one document.

        Follows ``meta.pagination.cursors.next`` until it is absent, and stops (with
        a warning in ``meta``) when a cursor or a whole page repeats: a cursor loop
        has been seen on Patreon. ``data`` and ``included`` hold each resource once.
        """
        data: dict[tuple[str, str], Any] = {}
        included: dict[tuple[str, str], Any] = {}
        seen_cursors: set[str] = set()
        page_params = dict(params)
        total = None
        pages = 0
        stopped = None
        while True:
            document = self.get(principal, path, page_params, deadline)
            pages += 1
            items = document.get("data")
            if not isinstance(items, list):
                raise upstream_error("Patreon answered a listing without a data list")
            keys = [_key(item) for item in items]
            if items and all(k in data for k in keys):
                stopped = "a page repeated an earlier page"
                break
            for k, item in zip(keys, items, strict=True):
                data.setdefault(k, item)
            for item in document.get("included") or []:
                if isinstance(item, dict):
                    included.setdefault(_key(item), item)
            pagination = (document.get("meta") or {}).get("pagination") or {}
            if isinstance(pagination.get("total"), int):
                total = pagination["total"]
            cursor = (pagination.get("cursors") or {}).get("next")
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
        if stopped:
            log.warning("stopped following cursors of %s after %d pages: %s", path, pages, stopped)
        meta: dict[str, Any] = {
            "pagination": {"total": total if total is not None else len(data), "cursors": {"next": None}},
            "pages": pages,
            "count": len(data),
        }
        if stopped:
            meta["stopped"] = stopped
        merged: dict[str, Any] = {"data": list(data.values()), "meta": meta}
        if included:
            merged["included"] = list(included.values())
        return merged


def _key(item: Any) -> tuple[str, str]:
    if not isinstance(item, dict):
        raise upstream_error("Patreon answered a resource that is not an object")
    return (str(item.get("type")), str(item.get("id")))
