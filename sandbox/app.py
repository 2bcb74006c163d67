"""Wiring: build the world, the stores and the falcon app from the settings.

`build(settings, ...)` returns a `Sandbox` with every part reachable (tests drive
webhook delivery and clocks through it); `create_app(settings, clock)` is the
falcon app alone, with webhook delivery started. Nothing here reads the environment.

Middleware order (requests in, responses out in reverse):
  AccessLog (count, time, log) -> FaultMiddleware (injected latency/errors)
  -> ApiGate (User-Agent, bearer token, rate limits) -> resources.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import falcon

from sandbox import api, control
from sandbox.accesslog import AccessLog
from sandbox.control import Sandbox
from sandbox.counters import Counters
from sandbox.data import CAMPAIGN_ID, World
from sandbox.errors import AUTHORIZE_PATH, TOKEN_PATH, ErrorRenderer
from sandbox.faults import FaultInjector, FaultMiddleware
from sandbox.gate import ApiGate
from sandbox.oauth import Authorize, TokenEndpoint, TokenStore
from sandbox.ratelimit import RateLimiter
from sandbox.settings import SandboxSettings
from sandbox.webhooks import V2_TRIGGERS, Transport, WebhookRegistry, http_transport


def build(
    settings: SandboxSettings,
    clock: Callable[[], float] = time.monotonic,
    wall_clock: Callable[[], float] = time.time,
    transport: Transport = http_transport,
    sleep: Callable[[float], None] = time.sleep,
) -> Sandbox:
    """Everything, wired but with webhook delivery not started."""
    counters = Counters()
    world = World.generate(settings.seed, settings.members)
    tokens = TokenStore(settings, counters, clock)
    tokens.issue_creator_tokens()
    limiter = RateLimiter(settings.rate_limit_per_2_seconds, settings.rate_limit_per_minute, clock)
    webhooks = WebhookRegistry(settings, counters, clock, wall_clock, transport)
    if settings.webhook_uri:
        webhooks.create(
            settings.client_id,
            CAMPAIGN_ID,
            settings.webhook_uri,
            list(V2_TRIGGERS),
            secret=settings.webhook_secret,
        )
    faults = FaultInjector()
    sandbox = Sandbox(settings, world, tokens, webhooks, faults, counters, wall_clock, limiter)

    app = falcon.App(
        middleware=[
            AccessLog(counters),
            FaultMiddleware(faults, counters, sleep),
            ApiGate(tokens, limiter, counters),
        ]
    )
    app.req_options.strip_url_path_trailing_slash = True
    ErrorRenderer().register(app)
    app.add_route(AUTHORIZE_PATH, Authorize(settings, world, tokens))
    app.add_route(TOKEN_PATH, TokenEndpoint(settings, tokens, limiter, counters))
    api.add_routes(app, api.Api(settings, world, webhooks))
    control.add_routes(app, sandbox)
    sandbox.app = app
    return sandbox


def create_app(settings: SandboxSettings, clock: Callable[[], float] = time.monotonic) -> falcon.App:
    sandbox = build(settings, clock=clock)
    sandbox.webhooks.start()
    return sandbox.app
