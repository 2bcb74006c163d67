"""API v2 reads, as the logged-in session or (with the server key) as the creator.

    GET /api/patreon/user                                  identity.get
    GET /api/patreon/campaigns                             campaigns.list
    GET /api/patreon/campaigns/{campaignId}/members        members.list
    GET /api/patreon/campaigns/{campaignId}/posts          posts.list
    GET /api/patreon/members/{memberId}                    members.get
    GET /api/patreon/posts/{postId}                        posts.get

Every input is checked here (ids: campaign and post ids are digits, member ids are
UUIDs; ``include``, ``fields[<type>]``, ``sort``, ``page[count]`` 1..1000,
``page[cursor]``; an unknown or repeated parameter is a 400 with a code) and the
worker gets a normalized dict of Patreon query parameters. ``all=true`` on a
listing asks the worker to follow every cursor and merge the pages into one
document. The answer is Patreon's JSON:API document with ``success: true`` added.
"""

from __future__ import annotations

import re
from typing import Any

import falcon

from settings.config import WebSettings
from web.errors import ApiError
from web.principals import call, resolve
from web.sessions import SessionStore
from wire import patreon_schema as schema
from wire.actions import Payload
from wire.client import WorkerClient
from wire.codes import (
    INVALID_PARAMETER,
    PATREON_UPSTREAM_ERROR,
    UNKNOWN_PARAMETER,
)

PAGE_TIMEOUT_S = 30.0  # one page; all=true gets the action's own (longer) timeout


def with_success(document: bytes) -> bytes:
    """``{"success": true, ...document}`` without decoding the document: the worker
    checked that it is a JSON object, and re-encoding megabytes of members costs more
    than the whole hop to the worker."""
    body = document.lstrip()
    if not body.startswith(b"{"):
        raise ApiError(502, PATREON_UPSTREAM_ERROR, "Patreon answered with something that is not a document")
    rest = body[1:].lstrip()
    return b'{"success":true' + (b"" if rest.startswith(b"}") else b",") + rest


def patreon_params(req: falcon.Request, allowed: frozenset[str]) -> dict[str, str]:
    params = {key: value for key, value in req.params.items() if key != "all"}
    try:
        return schema.normalize_query(params, allowed)
    except schema.ParamError as ex:
        raise ApiError(400, ex.code, ex.message) from ex


def all_flag(req: falcon.Request) -> bool:
    value = req.params.get("all")
    if value is None:
        return False
    if isinstance(value, str) and value.lower() in ("true", "1", "false", "0"):
        return value.lower() in ("true", "1")
    raise ApiError(400, INVALID_PARAMETER, "all must be true or false")


def checked_id(value: str, pattern: re.Pattern, code: str, what: str) -> str:
    try:
        return schema.check_id(value, pattern, code, what)
    except schema.ParamError as ex:
        raise ApiError(400, ex.code, f"{ex.message}") from ex


class ReadResource:
    """One read: validates, calls one action as the request's principal, answers."""

    def __init__(
        self,
        config: WebSettings,
        worker: WorkerClient,
        sessions: SessionStore,
        request: type[Payload],
        allowed: frozenset[str],
        *,
        path_id: tuple[str, re.Pattern, str, str] | None = None,
        listing: bool = False,
    ):
        self.config = config
        self.worker = worker
        self.sessions = sessions
        self.request = request
        self.allowed = allowed
        self.path_id = path_id  # (data key, pattern, error code, what)
        self.listing = listing

    def on_get(self, req: falcon.Request, resp: falcon.Response, **ids: str) -> None:
        principal = resolve(req, self.config, self.sessions)
        data: dict[str, Any] = {"principal": principal.wire}
        if self.path_id is not None:
            key, pattern, code, what = self.path_id
            (value,) = ids.values()
            data[key] = checked_id(value, pattern, code, what)
        everything = all_flag(req) if self.listing else False
        if not self.listing and "all" in req.params:
            raise ApiError(400, UNKNOWN_PARAMETER, "unknown query parameter 'all'")
        data["params"] = patreon_params(req, self.allowed)
        options: dict[str, Any] = {}
        if self.listing:
            data["all"] = everything
            if everything:
                options["retry"] = False  # a long walk through every page is not repeated blindly
            else:
                options["timeout_s"] = PAGE_TIMEOUT_S
        document = call(
            self.worker, self.sessions, principal, self.request(**data), req, resp, document=True, **options
        )
        resp.content_type = falcon.MEDIA_JSON
        resp.data = with_success(document)
