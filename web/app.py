"""The web app factory, ``create_app(config, worker, store)``, and its route table.

Only ``web.__main__`` reads the environment; tests build the app with their own
config and a fake or real worker client (and may pass their own ``sessions`` or
live-event ``subscribers`` check). Policy that several routes
share (the server key, no query, body limits) is in ``web.policy``; errors are
rendered by ``web.errors``.
"""

from __future__ import annotations

import falcon

from live_events.settings import port_setting as live_port_setting
from live_events.subscribers import SubscriberAuth
from settings.config import WebSettings
from store.database import Store
from web import auth, demo, errors
from web.entitlement_reads import EntitlementReads
from web.entitlements import AccessResource, EntitlementsResource, MyEntitlementsResource, SyncResource
from web.events import EventListResource, LiveMovedResource, SocketIoMovedResource
from web.live_tokens import LiveTokenResource
from web.memberstate import MemberStateResource
from web.openapi import OpenApiResource
from web.patreon_api import ReadResource
from web.requestid import RequestIdMiddleware
from web.sessions import SessionStore
from web.status import CrashResource, HealthResource, SleepResource, StatusResource
from web.webhook_admin import WebhookResource, WebhooksResource
from web.webhooks import WebhookReceiverResource
from wire import actions
from wire import patreon_schema as schema
from wire.client import WorkerClient
from wire.codes import INVALID_CAMPAIGN_ID, INVALID_MEMBER_ID, INVALID_POST_ID

CAMPAIGN_ID = ("campaign_id", schema.CAMPAIGN_ID, INVALID_CAMPAIGN_ID, "campaignId (digits)")
MEMBER_ID = ("member_id", schema.MEMBER_ID, INVALID_MEMBER_ID, "memberId (a UUID)")
POST_ID = ("post_id", schema.POST_ID, INVALID_POST_ID, "postId (digits)")


def create_app(
    config: WebSettings,
    worker: WorkerClient,
    store: Store | None = None,
    *,
    sessions: SessionStore | None = None,
    subscribers: SubscriberAuth | None = None,
) -> falcon.App:
    app = falcon.App(middleware=[RequestIdMiddleware()])
    app.req_options.strip_url_path_trailing_slash = True
    errors.install(app)
    route = app.add_route

    # -- health (no store needed) -----------------------------------------------------------
    route("/api/patreon/status", StatusResource(config, worker, store))
    route("/api/patreon/health", HealthResource(worker))
    route("/api/patreon/openapi.json", OpenApiResource())  # the document of this table
    if config.test_actions:
        route("/api/patreon/_test/sleep", SleepResource(worker))
        route("/api/patreon/_test/crash", CrashResource(worker))
    # -- the demo page: sandbox mode, or DEMO_PAGE=true (static, no store needed) -------------
    if config.demo_page:
        demo.add_routes(app, live_port_setting(), config.port)
    if store is None:
        return app

    sessions = sessions or SessionStore(store, cookie_secure=config.cookie_secure)
    login = auth.Login(config, worker, store, sessions)
    subscribers = subscribers or SubscriberAuth(config, sessions)

    def read(request: type[actions.Payload], allowed: frozenset[str], **kwargs) -> ReadResource:
        return ReadResource(config, worker, sessions, request, allowed, **kwargs)

    # -- login with Patreon -----------------------------------------------------------------
    route("/api/patreon/auth/url", auth.AuthUrlResource(login))
    route("/auth/patreon", auth.LoginRedirectResource(login))
    route("/auth/patreon/callback", auth.CallbackResource(login))
    route("/api/patreon/auth/token", auth.TokenResource(login))
    route("/api/patreon/auth/refresh", auth.RefreshResource(login))
    route("/api/patreon/auth/logout", auth.LogoutResource(login))

    # -- API v2 reads, as the session or (server key) the creator ---------------------------------
    route("/api/patreon/user", read(actions.IdentityGet, schema.SINGLE))
    route("/api/patreon/campaigns", read(actions.CampaignsList, schema.SINGLE))
    route(
        "/api/patreon/campaigns/{campaignId}/members",
        read(actions.MembersList, schema.LISTING, path_id=CAMPAIGN_ID, listing=True),
    )
    route(
        "/api/patreon/campaigns/{campaignId}/posts",
        read(actions.PostsList, schema.LISTING, path_id=CAMPAIGN_ID, listing=True),
    )
    route("/api/patreon/members/{memberId}", read(actions.MembersGet, schema.SINGLE, path_id=MEMBER_ID))
    route("/api/patreon/posts/{postId}", read(actions.PostsGet, schema.SINGLE, path_id=POST_ID))

    # -- webhooks: Patreon's deliveries, live events, member state, management (server key) -------
    route("/api/patreon/webhooks/patreon", WebhookReceiverResource(config, store))
    route("/api/patreon/webhooks/events", EventListResource(store, subscribers))
    route("/api/patreon/members/{memberId}/state", MemberStateResource(config, worker))
    route("/api/patreon/webhooks", WebhooksResource(config, worker))
    route("/api/patreon/webhooks/{webhookId}", WebhookResource(config, worker))

    # -- members and entitlements: answered from the store's tables, never from Patreon -------
    reads = EntitlementReads(store)  # one cache of those tables for the whole process
    route("/api/patreon/entitlements/{userId}", EntitlementsResource(config, store, reads))
    route("/api/patreon/access", AccessResource(config, store, reads))
    route("/api/patreon/me/entitlements", MyEntitlementsResource(config, store, sessions, reads))
    route("/api/patreon/sync", SyncResource(config, worker))

    # -- subscribe tokens for the live program's browsers (server key) ----------------------
    route("/api/patreon/live/tokens", LiveTokenResource(config))
    # -- live streams are the live program's (live/): a client still coming here is told so ----
    route("/api/patreon/events", LiveMovedResource("/api/patreon/events"))
    route("/socket.io", SocketIoMovedResource("/socket.io/"))  # /socket.io/ too (trailing slash stripped)

    return app
