"""The ``tokens`` table (migration 2): Patreon tokens per principal.

Owner: the worker (``worker/tokens.py``'s ``TokenStore``) writes, reads and rotates
every row. The one write web may make is ``forget`` of a session whose life ended
(logout while the worker is down, an expired session): a token never outlives its
session, whichever process notices the end.

A principal is ``session:<web session id>`` or ``creator``. expires_at: epoch
seconds, NULL when unknown (a creator pair from the environment). seed: for the
creator, a fingerprint of the environment pair the row descends from. access_token
'' marks a creator pair Patreon refused (invalid_grant).
"""

from __future__ import annotations

from store.database import Store

CREATOR = "creator"
SESSION_PREFIX = "session:"


def session_principal(session_id: str) -> str:
    return SESSION_PREFIX + session_id


def forget(store: Store, principal: str) -> bool:
    """Drop a principal's tokens (logout, an expired session). True if there were any."""
    with store.transaction() as conn:
        return conn.execute("DELETE FROM tokens WHERE principal = ?", (principal,)).rowcount > 0
