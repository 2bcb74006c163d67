"""Browser sessions and pending OAuth ``state``s: the owner of ``sessions`` and
``oauth_states`` (created in store/migrations).

A session is a random id (``secrets.token_urlsafe``, 256 bits) in an HttpOnly,
SameSite=Lax cookie named ``pb_session`` (Secure when ``SESSION_COOKIE_SECURE``);
everything else is in the store, so sessions survive a web restart and are the same
in every web process. The id is unguessable on its own, so nothing is signed and
``SESSION_SECRET`` is not needed. The Patreon tokens of a logged-in session are the
worker's (``store/tokens.py``, principal ``session:<id>``), never in the cookie.

Login rotates the id (``login``): the id a browser had before it logged in (and that
a page could have planted) never becomes a logged-in session.

A ``state`` is bound to the cookie of the browser that asked for it (``binding``: the
session id of a logged-in session, else the random value of the ``pb_session``
cookie, set when the browser had none), expires after ``STATE_TTL_S``, and is
deleted the moment it is presented (``consume_state``), whatever happens next: it
works once. A login start writes no session row: the one row a login needs is
written when it succeeds (``login``), so anonymous clients cannot fill ``sessions``
(issue 16, finding 7). At most ``MAX_STATES`` unexpired states exist at once; past
that a login start is refused with 503 ``LOGIN_STATES_FULL`` until some expire.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import time
from collections.abc import Callable

import falcon

from store import tokens
from store.database import Store

COOKIE_NAME = "pb_session"
STATE_TTL_S = 600.0  # 10 minutes to get through Patreon's consent page
# The cookie of a browser that has only started a login lives as long as its state.
ANONYMOUS_TTL_S = STATE_TTL_S
MAX_PENDING_STATES = 5  # per binding: a new login start drops the oldest beyond it
MAX_STATES = 20_000  # unexpired states in all; far above real logins in 10 minutes
SESSION_TTL_S = 30 * 24 * 3600.0  # a logged-in session, from its login
PURGE_INTERVAL_S = 300.0

_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32)
_STATE = re.compile(r"[A-Za-z0-9_-]{43}")  # fullmatch: "$" takes a trailing newline
# The newest states of a binding first. SQLite breaks a tie of expiry (a test's frozen
# clock) by insertion order; PostgreSQL has no such order, and real clocks do not tie.
_NEWEST_FIRST = {"sqlite": "expires_at DESC, rowid DESC", "postgresql": "expires_at DESC"}


@dataclasses.dataclass(frozen=True)
class Session:
    id: str = dataclasses.field(repr=False)  # the cookie value: never log it
    user_id: str | None
    campaign_ids: tuple[str, ...]

    @property
    def logged_in(self) -> bool:
        return self.user_id is not None


@dataclasses.dataclass(frozen=True)
class PendingState:
    redirect_uri: str
    scopes: tuple[str, ...]


class StateError(Exception):
    """A ``state`` that is unknown, expired, used, or not this session's."""


class StatesFull(Exception):
    """``MAX_STATES`` unexpired states exist: no login can start until some expire."""


def new_id() -> str:
    return secrets.token_urlsafe(32)


def _cookie_values(cookie_header: str | None, name: str) -> list[str]:
    """Every value of cookie ``name`` in a Cookie header, tolerating junk around it."""
    values = []
    for part in (cookie_header or "").split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key.strip() == name:
            values.append(value.strip().strip('"'))
    return values


class SessionStore:
    def __init__(self, store: Store, *, cookie_secure: bool = False, clock: Callable[[], float] = time.time):
        self._store = store
        self._secure = cookie_secure
        self._clock = clock
        self._purged_at = 0.0

    # -- reading (the interface the webhook streams use too) -------------------------
    def get(self, session_id: str) -> Session | None:
        if not isinstance(session_id, str) or not _SESSION_ID.fullmatch(session_id):
            return None
        with self._store.read() as conn:
            row = conn.execute(
                "SELECT id, user_id, campaign_ids FROM sessions WHERE id = :id AND expires_at > :now",
                {"id": session_id, "now": self._clock()},
            ).fetchone()
        if row is None:
            return None
        return Session(row["id"], row["user_id"], tuple(json.loads(row["campaign_ids"])))

    def from_cookie_header(self, cookie_header: str | None) -> Session | None:
        for value in _cookie_values(cookie_header, COOKIE_NAME):
            session = self.get(value)
            if session is not None:
                return session
        return None

    def from_request(self, req: falcon.Request) -> Session | None:
        for value in req.get_cookie_values(COOKIE_NAME) or []:
            session = self.get(value)
            if session is not None:
                return session
        return None

    def bindings(self, req: falcon.Request) -> list[str]:
        """Every well-formed ``pb_session`` value the request carries (a state may be bound to any)."""
        return [v for v in req.get_cookie_values(COOKIE_NAME) or [] if _SESSION_ID.fullmatch(v)]

    def binding_for(self, req: falcon.Request) -> tuple[str, bool]:
        """What a new state is bound to, and whether that is an anonymous cookie value
        (to set again, so the cookie lasts as long as the new state).

        A logged-in session's id; else the cookie value the browser already has; else a
        fresh one. No row is written.
        """
        session = self.from_request(req)
        if session is not None:
            return session.id, False
        values = self.bindings(req)
        return (values[0] if values else new_id()), True

    # -- writing -----------------------------------------------------------------------
    def create(self) -> Session:
        self._purge_expired()
        now = self._clock()
        session = Session(new_id(), None, ())
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT INTO sessions (id, user_id, campaign_ids, created_at, expires_at)"
                " VALUES (:id, NULL, '[]', :now, :expires_at)",
                {"id": session.id, "now": now, "expires_at": now + ANONYMOUS_TTL_S},
            )
        return session

    def issue_state(self, binding: str, redirect_uri: str, scopes: tuple[str, ...]) -> str:
        """A new state bound to ``binding``; ``StatesFull`` when ``MAX_STATES`` are pending."""
        self._purge_expired()
        state = secrets.token_urlsafe(32)
        now = self._clock()
        with self._store.transaction() as conn:
            pending = conn.execute(
                "SELECT COUNT(*) AS n FROM oauth_states WHERE expires_at > :now", {"now": now}
            ).fetchone()["n"]
            if pending >= MAX_STATES:
                conn.execute("DELETE FROM oauth_states WHERE expires_at <= :now", {"now": now})
                raise StatesFull()
            # Keep the newest few states of this binding (several tabs may log in at once).
            conn.execute(
                "DELETE FROM oauth_states WHERE session_id = :binding AND state NOT IN"
                " (SELECT state FROM oauth_states WHERE session_id = :binding"
                f" ORDER BY {_NEWEST_FIRST[conn.dialect]} LIMIT :keep)",
                {"binding": binding, "keep": MAX_PENDING_STATES - 1},
            )
            conn.execute(
                "INSERT INTO oauth_states (state, session_id, redirect_uri, scopes, expires_at)"
                " VALUES (:state, :binding, :redirect_uri, :scopes, :expires_at)",
                {
                    "state": state,
                    "binding": binding,
                    "redirect_uri": redirect_uri,
                    "scopes": " ".join(scopes),
                    "expires_at": now + STATE_TTL_S,
                },
            )
        return state

    def consume_state(self, bindings: list[str], state: str | None) -> PendingState:
        """Use up ``state``; raise ``StateError`` unless it is bound to one of ``bindings``
        (the request's cookie values) and fresh.

        A state presented by another browser is deleted too: it has leaked.
        """
        if not isinstance(state, str) or not _STATE.fullmatch(state):
            raise StateError("state is missing or malformed")
        with self._store.transaction() as conn:
            rows = conn.execute(
                "DELETE FROM oauth_states WHERE state = :state"
                " RETURNING session_id, redirect_uri, scopes, expires_at",
                {"state": state},
            ).fetchall()
        row = rows[0] if rows else None
        if row is None:
            raise StateError("state is unknown or was already used")
        # Expiry first: an anonymous session ends with its state, so an expired state's
        # session is gone too, and "expired" is what the user needs to hear.
        if row["expires_at"] <= self._clock():
            raise StateError("state has expired")
        matched = False
        for binding in bindings:
            matched |= secrets.compare_digest(row["session_id"], binding)
        if not matched:
            raise StateError("state was issued to another session")
        return PendingState(row["redirect_uri"], tuple(row["scopes"].split()))

    def login(
        self,
        old: Session | None,
        new_session_id: str,
        user_id: str,
        campaign_ids: list[str] | tuple[str, ...],
    ) -> Session:
        """Make ``new_session_id`` a logged-in session and end ``old`` (id rotation)."""
        now = self._clock()
        session = Session(new_session_id, str(user_id), tuple(str(c) for c in campaign_ids))
        with self._store.transaction() as conn:
            conn.execute(
                "INSERT INTO sessions (id, user_id, campaign_ids, created_at, expires_at)"
                " VALUES (:id, :user_id, :campaign_ids, :now, :expires_at)",
                {
                    "id": session.id,
                    "user_id": session.user_id,
                    "campaign_ids": json.dumps(list(session.campaign_ids)),
                    "now": now,
                    "expires_at": now + SESSION_TTL_S,
                },
            )
            if old is not None:
                conn.execute("DELETE FROM sessions WHERE id = :id", {"id": old.id})
        return session

    def end(self, session_id: str) -> None:
        """End a session and forget its Patreon tokens: a token never outlives its
        session (issue 16, finding 5: a session ended by ``PATREON_REAUTH_REQUIRED``
        left a working refresh token behind). Patreon offers no revocation endpoint,
        so forgetting is all that can be done; the worker's sweep removes any pair
        that still loses its session (``store.tokens.sweep_orphans``)."""
        with self._store.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE id = :id", {"id": session_id})
        tokens.forget(self._store, tokens.session_principal(session_id))

    def _purge_expired(self) -> None:
        """Drop expired sessions (and their tokens) and states, every few minutes."""
        now = self._clock()
        if now - self._purged_at < PURGE_INTERVAL_S:
            return
        self._purged_at = now
        with self._store.transaction() as conn:
            expired = [
                row["id"]
                for row in conn.execute(
                    "DELETE FROM sessions WHERE expires_at <= :now RETURNING id, user_id", {"now": now}
                ).fetchall()
            ]
            conn.execute("DELETE FROM oauth_states WHERE expires_at <= :now", {"now": now})
        for session_id in expired:
            tokens.forget(self._store, tokens.session_principal(session_id))

    # -- the cookie -------------------------------------------------------------------
    def set_cookie(self, resp: falcon.Response, session: Session) -> None:
        resp.set_cookie(
            COOKIE_NAME,
            session.id,
            max_age=int(SESSION_TTL_S if session.logged_in else ANONYMOUS_TTL_S),
            path="/",
            secure=self._secure,
            http_only=True,
            same_site="Lax",
        )

    def set_anonymous_cookie(self, resp: falcon.Response, binding: str) -> None:
        self.set_cookie(resp, Session(binding, None, ()))

    def clear_cookie(self, resp: falcon.Response) -> None:
        resp.unset_cookie(COOKIE_NAME, path="/", same_site="Lax")
