"""What can go wrong talking to Patreon, drawn once::

    PatreonError                 message: a call to Patreon failed
    +-- UpstreamError            Patreon failed us: a 5xx after retries, a timeout, a lost
    |                            connection, no time left before the deadline, an HTML
    |                            401 from the edge, or an answer without the JSON it must
    |                            have; retry_after when Patreon sent ``Retry-After``
    +-- EdgeBlocked              retry_after: Patreon's edge blocked this client (HTML 403
    |                            after many 4xx); no call leaves until the pause ends
    +-- RateLimited              retry_after (whole seconds): our own limiter could not
    |                            fit the call in time, or Patreon answered 429
    +-- AuthorizationRefused     the token endpoint refused a code exchange (not
    |                            invalid_grant)
    +-- InvalidGrant             the code or refresh token is dead (``invalid_grant``):
                                 the caller decides (a failed login, a session to end)

The client knows nothing of the wire or of HTTP statuses for our own callers: the
worker turns these into wire errors in one place (``worker/errors.py``). Any other
Patreon status comes back as a ``PatreonResponse``: what a 401 or a 404 means
depends on the call.
"""

from __future__ import annotations


class PatreonError(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class UpstreamError(PatreonError):
    def __init__(self, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class EdgeBlocked(PatreonError):
    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(PatreonError):
    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class AuthorizationRefused(PatreonError):
    pass


class InvalidGrant(PatreonError):
    """The ``error`` Patreon's token endpoint sent (e.g. ``invalid_grant``)."""

    def __init__(self, error: str):
        super().__init__(error)
        self.error = error
