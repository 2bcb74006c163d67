"""Every HTTP request to Patreon goes through ``PatreonHttp``.

It owns the transport policy:

* one ``requests.Session`` (the transport seam: tests inject a session whose adapter
  answers in memory), its connection pool sized for the worker's threads;
* a rate-limiter slot per request (``patreon_client.ratelimit``), held until the response
  is in; retries take their own slots;
* finite timeouts: a connect timeout of at most ``CONNECT_TIMEOUT_S`` and a read
  timeout of at most ``READ_TIMEOUT_S``, which together fit in the time left before
  the call's deadline. That bounds the wait for the connection and for each read,
  not the whole attempt: requests' read timeout restarts with every chunk, so a
  response that trickles in can still run past the deadline (web's own timeout is
  the backstop then);
* ``User-Agent`` from ``PATREON_USER_AGENT`` (Patreon drops some requests without
  one), query strings built here with brackets encoded (``fields%5Buser%5D``);
* retries with backoff only for GETs, only on a 5xx, a timeout or a lost connection,
  and only while the deadline allows. A 4xx is never retried here (many 4xx in a short
  time get a client blocked at Patreon's edge). A 429 pauses the token's window
  for its ``Retry-After`` (header first, then ``retry_after_seconds`` in the body)
  and fails the call with ``RateLimited``. A 5xx with a ``Retry-After`` over
  ``MAX_INLINE_WAIT_S`` is not retried: the caller gets it (``UpstreamError.retry_after``);
  a shorter one is waited out before the retry;
* Patreon's edge (Cloudflare): its answers are HTML, never JSON. An HTML 403 is the
  edge block for too many 4xx: ``EdgeBlock`` (``patreon_client.edge``) pauses every
  call of this process, each failing at once with ``EdgeBlocked``, until the pause
  ends. An HTML 401 is the edge's too, not a verdict on the token: ``UpstreamError``,
  no refresh;
* one log line per request: method, path (never the query: it can carry a cursor,
  and never a body: it can carry a code or a token), status, time, attempt and
  Patreon's ``x-patreon-uuid``; the request id comes from ``settings.logs``.

Errors (``patreon_client.errors``)::

    RateLimited     our own limiter could not fit the call, or Patreon said 429
    UpstreamError   5xx after retries, timeout, lost connection, a 2xx without JSON,
                    an HTML 401 (retry_after: Patreon's Retry-After, when it sent one)
    EdgeBlocked     the edge's HTML 403, or a call made while its pause lasts

Any other status is returned to the caller as a ``PatreonResponse``: what a 401 or
a 404 means depends on the call.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import json
import logging
import math
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import requests
from requests.adapters import HTTPAdapter

from patreon_client.edge import EdgeBlock
from patreon_client.errors import EdgeBlocked, RateLimited, UpstreamError
from patreon_client.ratelimit import RateLimiter
from settings.config import WorkerSettings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.05  # a little over a multiple of 3 s, TCP's initial retransmit
READ_TIMEOUT_S = 20.0
MIN_ATTEMPT_S = 0.5  # never start an attempt with less time than this left
MAX_ATTEMPTS = 3  # GETs only
BACKOFF_S = (0.25, 0.75)  # before the 2nd and the 3rd attempt
RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
DEFAULT_RETRY_AFTER_S = 1.0
MAX_RETRY_AFTER_S = 3600.0
MAX_INLINE_WAIT_S = 1.0  # a 5xx's Retry-After up to this is waited out, a longer one passed on



@dataclasses.dataclass(frozen=True)
class PatreonResponse:
    status: int
    headers: Mapping[str, str]  # case-insensitive (requests' own mapping)
    body: Any  # the parsed JSON, or None for an empty or non-JSON body
    patreon_uuid: str | None
    content: bytes = b""  # the body as received, passed on untouched where it is a document

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def upstream_error(message: str, retry_after: int | None = None) -> UpstreamError:
    return UpstreamError(message, retry_after)


def whole_seconds(seconds: float) -> int:
    """What a client may sleep: whole seconds, at least 1."""
    return max(1, math.ceil(seconds))


def is_edge_page(response: PatreonResponse) -> bool:
    """An answer from Patreon's edge (Cloudflare) rather than the API: not JSON."""
    return response.body is None and bool(response.content)


def build_session(pool_size: int, base_url: str) -> requests.Session:
    """A session whose pool keeps one connection per worker thread.

    requests reads the environment (proxies, CA bundle, netrc) again on every call,
    about 0.35 ms of CPU each; we only ever call ``base_url``, so read it once here,
    with requests' own rules, and then stop looking.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=max(1, pool_size), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    settings = session.merge_environment_settings(base_url, {}, None, None, None)
    session.proxies = settings["proxies"]
    session.verify = settings["verify"]
    session.cert = settings["cert"]
    session.trust_env = False
    return session


def _http_date(value: str) -> datetime.datetime | None:
    """An HTTP-date, or None when it is not one; a date without a zone is UTC."""
    if not value[:1].isalpha():
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (ValueError, TypeError, IndexError, OverflowError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment


def header_retry_after_s(response: PatreonResponse, now_epoch: float | None = None) -> float | None:
    """Seconds the ``Retry-After`` header asks for (seconds or an HTTP-date), or None."""
    header = (response.headers.get("Retry-After") or "").strip()
    if not header:
        return None
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(header)))
    except ValueError:
        moment = _http_date(header)
        if moment is None:
            return None  # a value we cannot read ("soon")
        now_epoch = time.time() if now_epoch is None else now_epoch
        return min(MAX_RETRY_AFTER_S, max(0.0, moment.timestamp() - now_epoch))


def retry_after_s(response: PatreonResponse, now_epoch: float | None = None) -> float:
    """Seconds to wait after a 429: ``Retry-After`` first, then the JSON body."""
    from_header = header_retry_after_s(response, now_epoch)
    if from_header is not None:
        return from_header
    body = response.body if isinstance(response.body, dict) else {}
    candidates = [body.get("retry_after_seconds")]
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        candidates.append(errors[0].get("retry_after_seconds"))
    for value in candidates:
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return min(MAX_RETRY_AFTER_S, float(value))
    return DEFAULT_RETRY_AFTER_S


class PatreonHttp:
    def __init__(
        self,
        config: WorkerSettings,
        limiter: RateLimiter,
        *,
        session: requests.Session | None = None,
        edge: EdgeBlock | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.base = config.patreon_api_base.rstrip("/")
        self.limiter = limiter
        self.edge = edge or EdgeBlock(config.patreon_edge_pause_s, clock=clock)
        self.session = session or build_session(config.worker_threads, config.patreon_api_base)
        self._user_agent = config.user_agent
        self._clock = clock
        self._sleep = sleep

    def request(
        self,
        method: str,
        path: str,
        *,
        deadline: float,
        token: str | None = None,
        rate_key: Hashable | None = None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        parse_json: bool = True,
    ) -> PatreonResponse:
        """Send one request (GETs may be retried) and return Patreon's answer.

        ``rate_key`` names the per-token window (None: the client window only, as for
        the token endpoint). Raises a ``PatreonError`` as the module docstring says.
        ``parse_json=False`` leaves ``body`` None for a 2xx: for a caller that reads
        ``content`` itself (the all=true merge scans each page once).
        """
        url = self.base + path
        if params:
            url += "?" + urlencode(dict(params), quote_via=quote, safe=",")
        headers = {"User-Agent": self._user_agent, "Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if json_body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(json_body, separators=(",", ":")).encode()
        elif form is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            data = urlencode(dict(form)).encode()
        retryable = method == "GET"
        attempts = MAX_ATTEMPTS if retryable else 1
        for attempt in range(1, attempts + 1):
            last = attempt == attempts
            blocked_s = self.edge.refuse()
            if blocked_s > 0:
                raise EdgeBlocked(
                    f"Patreon's edge has blocked this client; no calls for {whole_seconds(blocked_s)} s",
                    retry_after=whole_seconds(blocked_s),
                )
            try:
                response = self._send(
                    method, url, path, headers, data, deadline, rate_key, attempt, parse_json
                )
            except UpstreamError:
                if last or not self._may_retry(attempt, deadline):
                    raise
                continue
            if response.status == 429:
                wait = retry_after_s(response)
                self.limiter.pause(rate_key, wait)
                raise RateLimited(
                    f"Patreon is rate limiting these requests; retry in {whole_seconds(wait)} s",
                    retry_after=whole_seconds(wait),
                )
            if response.status == 403 and is_edge_page(response):
                pause_s = self.edge.start(header_retry_after_s(response))
                log.warning("Patreon's edge blocked this client: no calls to Patreon for %.0f s", pause_s)
                raise EdgeBlocked(
                    f"Patreon's edge has blocked this client; no calls for {whole_seconds(pause_s)} s",
                    retry_after=whole_seconds(pause_s),
                )
            if response.status == 401 and is_edge_page(response):
                wait = header_retry_after_s(response)
                raise upstream_error(
                    "Patreon's edge answered 401 with an HTML page",
                    None if wait is None else whole_seconds(wait),
                )
            if response.status >= 500:
                wait = header_retry_after_s(response)
                if (
                    retryable
                    and response.status in RETRYABLE_STATUSES
                    and not last
                    and (wait is None or wait <= MAX_INLINE_WAIT_S)
                    and self._may_retry(attempt, deadline, wait or 0.0)
                ):
                    continue
                raise upstream_error(
                    f"Patreon answered {response.status}", None if wait is None else whole_seconds(wait)
                )
            unreadable = response.body is None if parse_json else not response.content
            if response.ok and response.status != 204 and unreadable:
                raise upstream_error(f"Patreon answered {response.status} without a JSON body")
            return response
        raise AssertionError("unreachable")

    def _may_retry(self, attempt: int, deadline: float, wait_s: float = 0.0) -> bool:
        backoff = max(wait_s, BACKOFF_S[min(attempt, len(BACKOFF_S)) - 1])
        if deadline - self._clock() < backoff + MIN_ATTEMPT_S:
            return False
        self._sleep(backoff)
        return True

    def _send(
        self,
        method: str,
        url: str,
        path: str,
        headers: dict[str, str],
        data: bytes | None,
        deadline: float,
        rate_key: Hashable | None,
        attempt: int,
        parse_json: bool = True,
    ) -> PatreonResponse:
        with self.limiter.slot(rate_key, deadline):
            remaining = deadline - self._clock()
            if remaining < MIN_ATTEMPT_S / 5:
                raise upstream_error("no time left to ask Patreon within this call's deadline")
            # Connect and read budgets add up to at most what is left.
            connect_s = min(CONNECT_TIMEOUT_S, remaining / 2)
            timeout = (connect_s, min(READ_TIMEOUT_S, remaining - connect_s))
            started = self._clock()
            try:
                raw = self.session.request(
                    method, url, headers=headers, data=data, timeout=timeout, allow_redirects=False
                )
            except requests.Timeout as ex:
                log.warning("patreon %s %s timed out (attempt %d)", method, path, attempt)
                raise upstream_error("Patreon did not answer in time") from ex
            except requests.RequestException as ex:
                # The exception text can hold the URL; its class name is enough.
                log.warning("patreon %s %s failed: %s (attempt %d)", method, path, type(ex).__name__, attempt)
                raise upstream_error(f"Patreon could not be reached ({type(ex).__name__})") from ex
            elapsed_ms = (self._clock() - started) * 1000
        patreon_uuid = raw.headers.get("x-patreon-uuid")
        log.info(
            "patreon %s %s -> %d in %.0f ms (attempt %d, x-patreon-uuid %s)",
            method,
            path,
            raw.status_code,
            elapsed_ms,
            attempt,
            patreon_uuid or "-",
        )
        body = None
        # A 2xx the caller scans itself is not parsed here; an error always is (its details).
        if raw.content and (parse_json or not 200 <= raw.status_code < 300):
            try:
                body = raw.json()
            except ValueError:
                body = None
        return PatreonResponse(raw.status_code, raw.headers, body, patreon_uuid, raw.content)
