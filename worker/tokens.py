"""Patreon tokens, per principal: the owner of the ``tokens`` table (``store/tokens.py``).

A principal is ``session:<web session id>`` (a user who logged in through that
session; never shared with another session) or ``creator`` (the creator's token,
for the site's own backend). Tokens stay in the store and in this process; no
token, and no session id, is ever logged (``label()`` gives a safe name).

Refresh:

* before expiry (within ``REFRESH_MARGIN_S``) and once after Patreon answers 401;
  a token with no refresh token is used until it actually expires, then (or after
  a 401) the caller gets 401 ``PATREON_REAUTH_REQUIRED``;
* a refresh answer without a refresh token keeps the old one (Patreon may omit it);
* single-flight per principal: an in-process lock per principal, then a lease in the
  store (``token-refresh:<hash of the principal>``, ``store.leases``) so that workers
  in other processes or on other hosts take turns too; whoever gets them second
  re-reads the row, sees that the stored access token is no longer the one that
  failed and uses the new one instead of refreshing again (20 concurrent 401s spread
  over several workers -> one refresh). A holder that dies mid-refresh blocks the
  principal's refreshes until its lease expires (``REFRESH_LEASE_TTL_S``);
* the rotated pair is saved in one transaction *before* it is used or returned: the
  old refresh token is dead the moment Patreon answers, so losing the new one would
  end the session;
* ``invalid_grant`` ends it: a session's tokens are dropped, the creator's are marked
  dead (not re-seeded from the same environment pair), and the caller gets 401
  ``PATREON_REAUTH_REQUIRED``.

The creator token is seeded from ``PATREON_CREATOR_ACCESS_TOKEN``/``..._REFRESH_TOKEN``
only when the store has none from that environment pair (a fingerprint of the pair
is kept): after the first refresh the stored, rotated pair wins over the environment,
and an operator who puts a *new* pair in the environment gets it used.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Callable

from patreon_client.oauth import Grant, InvalidGrant, OAuthClient
from store.database import Store
from store.tokens import CREATOR, forget
from wire.codes import (
    CREATOR_TOKEN_NOT_CONFIGURED,
    MISSING_REFRESH_TOKEN,
    PATREON_AUTH_REQUIRED,
    PATREON_REAUTH_REQUIRED,
    PATREON_UPSTREAM_ERROR,
)
from wire.protocol import ActionError
from worker.lease_holder import LeaseHolder, default_holder

log = logging.getLogger(__name__)

REFRESH_MARGIN_S = 300.0
# Above the token call's own timeout (oauth.refresh: 20 s): a live holder never loses it.
REFRESH_LEASE_TTL_S = 30.0
REFRESH_WAIT_POLL_S = 0.05  # a waiting worker re-reads the lease this often (a read)

REAUTH_REQUIRED = PATREON_REAUTH_REQUIRED
AUTH_REQUIRED = PATREON_AUTH_REQUIRED
CREATOR_NOT_CONFIGURED = CREATOR_TOKEN_NOT_CONFIGURED


def label(principal: str) -> str:
    """A name for logs: a session id is a cookie value and must never be logged."""
    if principal == CREATOR:
        return CREATOR
    return "session#" + hashlib.sha256(principal.encode()).hexdigest()[:10]


@dataclasses.dataclass(frozen=True)
class Token:
    principal: str
    access_token: str = dataclasses.field(repr=False)
    refresh_token: str | None = dataclasses.field(repr=False)
    expires_at: float | None
    scope: str
    token_type: str
    patreon_user_id: str | None
    # The access token as stored (sealed, store/encryption.py): the compare-and-swap
    # of a rotation matches on it, as Fernet seals the same token differently each time.
    sealed_access: str | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def rate_key(self) -> str:
        """Patreon limits per client and *user*: two sessions of one user share a window."""
        return f"user:{self.patreon_user_id}" if self.patreon_user_id else self.principal

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(self.scope.split())


class _PrincipalLock:
    __slots__ = ("__weakref__", "lock")

    def __init__(self) -> None:
        self.lock = threading.Lock()


_SELECT = "SELECT * FROM tokens WHERE principal = :principal"
# Insert or replace the principal's row (the portable upsert: SQLite and PostgreSQL).
_UPSERT = (
    "INSERT INTO tokens (principal, access_token, refresh_token, expires_at, scope, token_type,"
    " patreon_user_id, seed, updated_at) VALUES (:principal, :access_token, :refresh_token, :expires_at,"
    " :scope, :token_type, :patreon_user_id, :seed, :updated_at)"
    " ON CONFLICT (principal) DO UPDATE SET access_token = excluded.access_token,"
    " refresh_token = excluded.refresh_token, expires_at = excluded.expires_at, scope = excluded.scope,"
    " token_type = excluded.token_type, patreon_user_id = excluded.patreon_user_id, seed = excluded.seed,"
    " updated_at = excluded.updated_at"
)


def _fingerprint(access: str, refresh: str) -> str:
    return hashlib.sha256(b"creator-seed\0" + access.encode() + b"\0" + refresh.encode()).hexdigest()[:32]


def _token(row, cipher) -> Token:
    return Token(
        principal=row["principal"],
        access_token=cipher.open(row["access_token"]),
        refresh_token=cipher.open(row["refresh_token"]),
        expires_at=row["expires_at"],
        scope=row["scope"],
        token_type=row["token_type"],
        patreon_user_id=row["patreon_user_id"],
        sealed_access=row["access_token"],
    )


class TokenStore:
    def __init__(
        self,
        store: Store,
        oauth: OAuthClient,
        *,
        creator_pair: tuple[str, str] | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        refresh_margin_s: float = REFRESH_MARGIN_S,
        holder: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self._store = store
        self._holder = holder or default_holder()  # this process's name on refresh leases
        self._sleep = sleep
        self._oauth = oauth
        self._creator_pair = creator_pair if creator_pair and all(creator_pair) else None
        self._clock = clock
        self._monotonic = monotonic
        self._margin_s = refresh_margin_s
        self._guard = threading.Lock()
        self._locks: weakref.WeakValueDictionary[str, _PrincipalLock] = weakref.WeakValueDictionary()
        self.refreshes = 0  # refreshes done by this process, for tests and status

    # -- reading ----------------------------------------------------------------
    def _row(self, principal: str):
        with self._store.read() as conn:
            return conn.execute(_SELECT, {"principal": principal}).fetchone()

    def load(self, principal: str) -> Token | None:
        """The stored token, or None. The creator's is seeded here when due."""
        row = self._row(principal)
        if principal == CREATOR and self._creator_pair is not None:
            seed = _fingerprint(*self._creator_pair)
            if row is None or row["seed"] != seed:
                row = self._seed_creator(seed)
        if row is None or not row["access_token"]:
            return None
        return _token(row, self._store.cipher)

    def _seed_creator(self, seed: str):
        access, refresh = self._creator_pair
        with self._store.transaction() as conn:
            row = conn.execute(_SELECT, {"principal": CREATOR}).fetchone()
            if row is None or row["seed"] != seed:
                conn.execute(
                    _UPSERT,
                    {
                        "principal": CREATOR,
                        "access_token": self._store.cipher.seal(access),
                        "refresh_token": self._store.cipher.seal(refresh),
                        "expires_at": None,
                        "scope": "",
                        "token_type": "Bearer",
                        "patreon_user_id": None,
                        "seed": seed,
                        "updated_at": self._clock(),
                    },
                )
                log.info("creator token taken from the environment (it rotates in the store from now on)")
                row = conn.execute(_SELECT, {"principal": CREATOR}).fetchone()
        return row

    def current(self, principal: str, deadline: float) -> Token:
        """A token to use now: refreshed first when it expires within the margin."""
        token = self.load(principal)
        if token is None:
            raise self._absent(principal)
        now = self._clock()
        if token.expires_at is not None and token.expires_at - now < self._margin_s:
            if token.refresh_token:
                return self.refresh(principal, deadline, stale=token)
            if token.expires_at > now:
                return token  # nothing to refresh it with: use it while it lasts
            raise ActionError(
                REAUTH_REQUIRED,
                "The Patreon token has expired and cannot be refreshed; log in again",
                status=401,
            )
        return token

    def _absent(self, principal: str) -> ActionError:
        if principal != CREATOR:
            return ActionError(AUTH_REQUIRED, "Not logged in with Patreon", status=401)
        if self._creator_pair is None:
            return ActionError(
                CREATOR_NOT_CONFIGURED,
                "No creator token is configured (PATREON_CREATOR_ACCESS_TOKEN/REFRESH_TOKEN)",
                status=503,
            )
        return ActionError(
            REAUTH_REQUIRED,
            "Patreon refused the creator token; set a new PATREON_CREATOR_ACCESS_TOKEN/REFRESH_TOKEN pair",
            status=401,
        )

    # -- writing ----------------------------------------------------------------
    def save_grant(self, principal: str, grant: Grant, patreon_user_id: str | None = None) -> Token:
        """Store a fresh grant (a code exchange) for a principal, replacing what it had."""
        now = self._clock()
        expires_at = now + grant.expires_in if grant.expires_in else None
        sealed_access = self._store.cipher.seal(grant.access_token)
        with self._store.transaction() as conn:
            conn.execute(
                _UPSERT,
                {
                    "principal": principal,
                    "access_token": sealed_access,
                    "refresh_token": self._store.cipher.seal(grant.refresh_token),
                    "expires_at": expires_at,
                    "scope": grant.scope,
                    "token_type": grant.token_type,
                    "patreon_user_id": patreon_user_id,
                    "seed": None,
                    "updated_at": now,
                },
            )
        return Token(
            principal,
            grant.access_token,
            grant.refresh_token,
            expires_at,
            grant.scope,
            grant.token_type,
            patreon_user_id,
            sealed_access,
        )

    def set_user(self, principal: str, patreon_user_id: str) -> None:
        with self._store.transaction() as conn:
            conn.execute(
                "UPDATE tokens SET patreon_user_id = :user_id WHERE principal = :principal",
                {"user_id": patreon_user_id, "principal": principal},
            )

    def forget(self, principal: str) -> bool:
        return forget(self._store, principal)

    # -- refreshing ---------------------------------------------------------------
    def _lock_for(self, principal: str) -> _PrincipalLock:
        with self._guard:
            holder = self._locks.get(principal)
            if holder is None:
                holder = self._locks[principal] = _PrincipalLock()
            return holder

    def refresh(self, principal: str, deadline: float, stale: Token | None = None) -> Token:
        """Rotate a principal's pair, once however many callers ask at the same time.

        ``stale`` is the token that failed (or is about to expire): when the stored
        one is already different, another caller has refreshed and that one is used.
        Without ``stale`` (an explicit refresh) a refresh always happens.
        """
        holder = self._lock_for(principal)  # a strong reference while we use it
        if not holder.lock.acquire(timeout=max(0.0, deadline - self._monotonic())):
            raise ActionError(
                PATREON_UPSTREAM_ERROR,
                "A token refresh did not finish within this call's deadline",
                status=502,
            )
        lease = LeaseHolder(
            self._store,
            "token-refresh:" + hashlib.sha256(principal.encode()).hexdigest()[:32],
            self._holder,
            REFRESH_LEASE_TTL_S,
            clock=self._clock,
        )
        try:
            # Other workers' turn first: they may be refreshing this principal right now.
            while not lease.try_take():
                if self._monotonic() >= deadline:
                    raise ActionError(
                        PATREON_UPSTREAM_ERROR,
                        "A token refresh in another worker did not finish within this call's deadline",
                        status=502,
                    )
                self._sleep(REFRESH_WAIT_POLL_S)
            return self._refresh_held(principal, deadline, stale)
        finally:
            lease.release()
            holder.lock.release()

    def _refresh_held(self, principal: str, deadline: float, stale: Token | None) -> Token:
        """``refresh`` with both locks held: re-read the row, refresh if still due."""
        token = self.load(principal)
        if token is None:
            if stale is not None:
                raise ActionError(
                    REAUTH_REQUIRED, "The Patreon session has ended; log in again", status=401
                )
            if principal == CREATOR:
                raise self._absent(principal)
            raise ActionError(MISSING_REFRESH_TOKEN, "This session has no Patreon tokens to refresh")
        if stale is not None and token.access_token != stale.access_token:
            return token
        if not token.refresh_token:
            if stale is not None:
                # Patreon refused (or time ended) a token we cannot renew.
                raise ActionError(
                    REAUTH_REQUIRED, "The Patreon token cannot be refreshed; log in again", status=401
                )
            raise ActionError(MISSING_REFRESH_TOKEN, "No refresh token is stored for this principal")
        try:
            grant = self._oauth.refresh(token.refresh_token, deadline)
        except InvalidGrant:
            self._drop(token)
            log.warning("refresh token refused (invalid_grant): %s must log in again", label(principal))
            raise ActionError(
                REAUTH_REQUIRED, "Patreon refused the refresh token; log in again", status=401
            ) from None
        self.refreshes += 1
        return self._rotate(token, grant)

    def _rotate(self, old: Token, grant: Grant) -> Token:
        """Save the new pair in place of the old one, in one transaction."""
        now = self._clock()
        expires_at = now + grant.expires_in if grant.expires_in else None
        scope = grant.scope or old.scope
        # A refresh grant may omit the refresh token: the old one then stays valid.
        refresh_token = grant.refresh_token or old.refresh_token
        sealed_access = self._store.cipher.seal(grant.access_token)
        with self._store.transaction() as conn:
            updated = conn.execute(
                "UPDATE tokens SET access_token = :access, refresh_token = :refresh, expires_at = :expires_at,"
                " scope = :scope, token_type = :token_type, updated_at = :now"
                " WHERE principal = :principal AND access_token = :old_access",
                {
                    "access": sealed_access,
                    "refresh": self._store.cipher.seal(refresh_token),
                    "expires_at": expires_at,
                    "scope": scope,
                    "token_type": grant.token_type,
                    "now": now,
                    "principal": old.principal,
                    "old_access": old.sealed_access,
                },
            ).rowcount
        log.info("token refreshed for %s", label(old.principal))
        if not updated:
            # Logged out (or replaced by a new login) while we refreshed: the new pair
            # belongs to nobody now.
            current = self.load(old.principal)
            if current is None:
                raise ActionError(REAUTH_REQUIRED, "The Patreon session has ended; log in again", status=401)
            return current
        return dataclasses.replace(
            old,
            access_token=grant.access_token,
            refresh_token=refresh_token,
            expires_at=expires_at,
            scope=scope,
            token_type=grant.token_type,
            sealed_access=sealed_access,
        )

    def _drop(self, token: Token) -> None:
        with self._store.transaction() as conn:
            if token.principal == CREATOR:
                conn.execute(
                    "UPDATE tokens SET access_token = '', refresh_token = NULL, updated_at = :now"
                    " WHERE principal = :principal AND access_token = :access",
                    {"now": self._clock(), "principal": CREATOR, "access": token.sealed_access},
                )
            else:
                conn.execute(
                    "DELETE FROM tokens WHERE principal = :principal AND access_token = :access",
                    {"principal": token.principal, "access": token.sealed_access},
                )
