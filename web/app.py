"""The web app factory: ``create_app(config, worker, store)``.

Only ``web.__main__`` reads the environment; tests build the app with their own
config and a fake or real worker client.
"""

from __future__ import annotations

import falcon

from web import errors
from web.requestid import RequestIdMiddleware
from web.status import HealthResource, SleepResource, StatusResource
from worker.client import WorkerClient
from worker.config import Config
from worker.store import Store


def create_app(config: Config, worker: WorkerClient, store: Store | None = None) -> falcon.App:
    app = falcon.App(middleware=[RequestIdMiddleware()])
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app)
    app.add_route("/api/patreon/status", StatusResource(config, worker))
    app.add_route("/api/patreon/health", HealthResource(worker))
    if config.test_actions:
        app.add_route("/api/patreon/_test/sleep", SleepResource(worker))
    return app
