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

import time

from store.database import Store

CREATOR = "creator"
SESSION_PREFIX = "session:"
# A login's tokens are stored by the worker a moment before web writes the session row
# (web.auth.Login.finish): a pair younger than this is never an orphan.
ORPHAN_GRACE_S = 600.0


def session_principal(session_id: str) -> str:
    return SESSION_PREFIX + session_id


def forget(store: Store, principal: str) -> bool:
    """Drop a principal's tokens (logout, an expired session). True if there were any."""
    with store.transaction() as conn:
        return conn.execute("DELETE FROM tokens WHERE principal = :principal", {"principal": principal}).rowcount > 0


def sweep_orphans(store: Store, *, now: float | None = None, grace_s: float = ORPHAN_GRACE_S) -> int:
    """Drop session tokens whose session is gone (ended, expired, or never written
    because its login failed half way), unless updated within ``grace_s``. Returns
    how many went. Reads ``sessions`` (web.sessions' table) for the one purpose of
    finding them; the worker runs it every few minutes (worker/token_sweep.py)."""
    cutoff = (time.time() if now is None else now) - grace_s
    with store.transaction() as conn:
        return conn.execute(
            "DELETE FROM tokens WHERE principal LIKE 'session:%' AND updated_at < :cutoff"
            " AND substr(principal, :start) NOT IN (SELECT id FROM sessions)",
            {"cutoff": cutoff, "start": len(SESSION_PREFIX) + 1},
        ).rowcount
