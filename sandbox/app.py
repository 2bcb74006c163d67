"""Wiring: build the world, the stores and the falcon app from the settings.

`build(settings, ...)` returns a `Sandbox` with every part reachable (tests drive
webhook delivery and clocks through it); `create_app(settings, clock)` is the
falcon app alone, with webhook delivery started. Nothing here reads the environment.

Middleware order (requests in, responses out in reverse):
  AccessLog (count, time, log) -> EdgeMiddleware (the 4xx edge block)
  -> FaultMiddleware (injected latency/errors) -> ApiGate (User-Agent, bearer token,
  rate limits) -> resources.
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
from sandbox.edge import EdgeGuard, EdgeMiddleware
from sandbox.errors import AUTHORIZE_PATH, TOKEN_PATH, ErrorRenderer
from sandbox.faults import FaultInjector, FaultMiddleware
from sandbox.gate import ApiGate
from sandbox.oauth import Authorize, TokenEndpoint, TokenStore
from sandbox.persistence import StateFile
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
    """Everything, wired but with webhook delivery not started.

    With `settings.state_dir` the state saved by the last run is restored (if it was
    made with the same settings) and every change is saved from then on.
    """
    counters = Counters()
    world = World.generate(settings.seed, settings.members)
    tokens = TokenStore(settings, counters, clock)
    limiter = RateLimiter(settings.rate_limit_per_2_seconds, settings.rate_limit_per_minute, clock)
    webhooks = WebhookRegistry(settings, counters, clock, wall_clock, transport)
    state_file = None
    saved = None
    if settings.state_dir is not None:
        state_file = StateFile(settings.state_dir, settings, world, tokens, webhooks, clock, wall_clock)
        saved = state_file.read()
    if saved is not None:
        state_file.restore(saved)
    else:
        tokens.issue_creator_tokens()
        if settings.webhook_uri:
            webhooks.create(
                settings.client_id,
                CAMPAIGN_ID,
                settings.webhook_uri,
                list(V2_TRIGGERS),
                secret=settings.webhook_secret,
            )
    if state_file is not None:
        state_file.attach()
    faults = FaultInjector()
    edge = EdgeGuard(settings, counters, clock)
    sandbox = Sandbox(settings, world, tokens, webhooks, faults, counters, wall_clock, limiter, edge)
    sandbox.state_file = state_file
    sandbox.restored = saved is not None

    app = falcon.App(
        middleware=[
            AccessLog(counters),
            EdgeMiddleware(edge),
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
