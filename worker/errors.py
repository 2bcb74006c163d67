"""Patreon client errors become wire errors here, once, for every Patreon action::

    patreon_client.errors          wire error (code, status)
    UpstreamError                  PATREON_UPSTREAM_ERROR  502, retry_after when Patreon sent one
    EdgeBlocked (retry_after)      PATREON_EDGE_BLOCKED    503, retry_after
    RateLimited (retry_after)      RATE_LIMITED            429, retry_after
    AuthorizationRefused           PATREON_AUTH_FAILED     401
    InvalidGrant                   PATREON_AUTH_FAILED     401 (handlers catch it first:
                                   a login fails, a session ends; this is the backstop)

``patreon_actions`` applies it around every handler. What Patreon's own 4xx answers
mean (401, 403, 404, 400) depends on the call and is decided in ``patreon_api``;
``wire/codes.py`` holds every code with its status and meaning.
"""

from __future__ import annotations

from patreon_client.errors import (
    AuthorizationRefused,
    EdgeBlocked,
    InvalidGrant,
    PatreonError,
    RateLimited,
    UpstreamError,
)
from wire.codes import (
    PATREON_AUTH_FAILED,
    PATREON_EDGE_BLOCKED,
    PATREON_UPSTREAM_ERROR,
    RATE_LIMITED,
    status_of,
)
from wire.protocol import ActionError


def wire_error(ex: PatreonError) -> ActionError:
    if isinstance(ex, RateLimited):
        return ActionError(RATE_LIMITED, ex.message, status_of(RATE_LIMITED), retry_after=ex.retry_after)
    if isinstance(ex, EdgeBlocked):
        return ActionError(
            PATREON_EDGE_BLOCKED, ex.message, status_of(PATREON_EDGE_BLOCKED), retry_after=ex.retry_after
        )
    if isinstance(ex, AuthorizationRefused | InvalidGrant):
        return ActionError(PATREON_AUTH_FAILED, ex.message, status_of(PATREON_AUTH_FAILED))
    retry_after = ex.retry_after if isinstance(ex, UpstreamError) else None
    return ActionError(
        PATREON_UPSTREAM_ERROR, ex.message, status_of(PATREON_UPSTREAM_ERROR), retry_after=retry_after
    )
