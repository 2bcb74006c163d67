"""Who a request acts as, and calling the worker as them.

* ``Authorization: Bearer <BRIDGE_API_KEY>``: the site's own backend, acting with the
  creator's token (a wrong key is 401 ``INVALID_API_KEY``; with no key configured,
  any Bearer header is refused);
* otherwise the ``pb_session`` cookie of a session that logged in with Patreon;
* otherwise 401 ``PATREON_AUTH_REQUIRED``.

``call`` ends a session whose Patreon login is gone for good (the worker answered
``PATREON_REAUTH_REQUIRED``: the refresh token was refused): the session row goes,
the cookie is cleared, and the 401 reaches the browser.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import falcon

from settings.config import WebSettings
from web.errors import ApiError
from web.serverkey import is_server_request
from web.sessions import Session, SessionStore
from wire.actions import CREATOR, Payload, session
from wire.client import WorkerCallError, WorkerClient
from wire.codes import PATREON_AUTH_REQUIRED, PATREON_REAUTH_REQUIRED

AUTH_REQUIRED = PATREON_AUTH_REQUIRED
REAUTH_REQUIRED = PATREON_REAUTH_REQUIRED


@dataclasses.dataclass(frozen=True)
class Principal:
    session: Session | None  # None: the creator, through the server key

    @property
    def wire(self) -> str | dict[str, str]:
        return CREATOR if self.session is None else session(self.session.id)


def resolve(req: falcon.Request, config: WebSettings, sessions: SessionStore) -> Principal:
    if is_server_request(req, config):
        return Principal(None)
    session = sessions.from_request(req)
    if session is None or not session.logged_in:
        raise ApiError(401, AUTH_REQUIRED, "Log in with Patreon first (or send the server key)")
    return Principal(session)


def call(
    worker: WorkerClient,
    sessions: SessionStore,
    principal: Principal,
    request: Payload,
    req: falcon.Request,
    resp: falcon.Response,
    document: bool = False,
    **kwargs: Any,
) -> Any:
    """The worker's answer: a dict, or with ``document`` the undecoded JSON bytes."""
    send = worker.send_document if document else worker.send
    try:
        return send(request, request_id=req.context.request_id, **kwargs)
    except WorkerCallError as ex:
        if ex.code == REAUTH_REQUIRED and principal.session is not None:
            sessions.end(principal.session.id)
            sessions.clear_cookie(resp)
        raise
