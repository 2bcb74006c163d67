"""The web app factory: ``create_app(config, worker, store)``.

Only ``web.__main__`` reads the environment; tests build the app with their own
config and a fake or real worker client.
"""

from __future__ import annotations

import falcon

from web import auth, errors, live_tokens, patreon_api, webhook_admin, webhooks
from web.events import StreamGate
from web.requestid import RequestIdMiddleware
from web.sessions import SessionStore
from web.status import CrashResource, HealthResource, SleepResource, StatusResource
from worker.client import WorkerClient
from worker.config import Config
from worker.store import Store


def create_app(
    config: Config, worker: WorkerClient, store: Store | None = None, *, streams: StreamGate | None = None
) -> falcon.App:
    app = falcon.App(middleware=[RequestIdMiddleware()])
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app)
    app.add_route("/api/patreon/status", StatusResource(config, worker))
    app.add_route("/api/patreon/health", HealthResource(worker))
    if config.test_actions:
        app.add_route("/api/patreon/_test/sleep", SleepResource(worker))
        app.add_route("/api/patreon/_test/crash", CrashResource(worker))
    if store is not None:
        sessions = SessionStore(store, cookie_secure=config.cookie_secure)
        # Webhooks: the receiver, live event streams (capped by ``streams``), member state.
        webhooks.install(app, config, worker, store, streams or StreamGate(config.max_streams), sessions)
        # Login with Patreon, API reads, webhook management.
        auth.add_routes(app, config, worker, store, sessions)
        patreon_api.add_routes(app, config, worker, store, sessions)
        webhook_admin.add_routes(app, config, worker, store)
        live_tokens.add_routes(app, config)  # subscribe tokens for the live program (live/)
    return app
