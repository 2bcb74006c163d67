"""The Patreon actions the worker serves (declared in ``wire.actions``):
login (code exchange, refresh, forget), API v2 reads, and webhook management.

``attach(registry, config, store)`` builds the Patreon client stack once per worker
process (rate limiter -> ``PatreonHttp`` -> ``OAuthClient`` -> ``TokenStore`` ->
``PatreonApi``) and registers one handler per action. Each handler checks its
``data`` again (web already validated it; a frame is still a boundary), turns the
call's deadline into a deadline for Patreon a little earlier (so the reply, even an
error, reaches web before web gives up), and returns plain JSON.

Principals in ``data``: ``{"principal": {"session": "<id>"}}`` or
``{"principal": "creator"}``. Webhook actions always use the creator's token. Each
handler is marked with the request payload it serves (``wire.actions``: name,
timeout, idempotency and the message shapes); ``attach`` registers every marked one.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from patreon_client.errors import InvalidGrant, PatreonError, UpstreamError
from patreon_client.http import PatreonHttp, upstream_error
from patreon_client.oauth import OAuthClient
from patreon_client.ratelimit import RateLimiter
from settings.config import WorkerSettings
from settings.logs import request_id_var
from store import webhook_secrets
from store.database import Store
from store.tokens import CREATOR, session_principal
from wire import actions
from wire import patreon_schema as schema
from wire.codes import (
    CAMPAIGN_REQUIRED,
    INVALID_CAMPAIGN_ID,
    INVALID_MEMBER_ID,
    INVALID_PAUSED,
    INVALID_POST_ID,
    INVALID_WEBHOOK_ID,
    MISSING_AUTH_CODE,
    NOT_FOUND,
    NOTHING_TO_UPDATE,
    PATREON_AUTH_FAILED,
    PATREON_UPSTREAM_ERROR,
)
from wire.protocol import (
    INVALID_DATA,
    ActionError,
    ActionRegistry,
    CallContext,
    Document,
    handles,
    marked_handlers,
)
from worker.errors import wire_error
from worker.lease_holder import worker_holder
from worker.patreon_api import PatreonApi
from worker.shared_ratelimit import SharedRateLimiter
from worker.tokens import Token, TokenStore, label

log = logging.getLogger(__name__)

# Answer this long before web's own timeout, so web hears our error, not its timeout.
REPLY_MARGIN_S = 0.5
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{20,128}")  # used with fullmatch: "$" would take a trailing newline
MAX_CODE_CHARS = 512

USER_FIELDS = "full_name,first_name,last_name,email,image_url,thumb_url,vanity,url,is_email_verified,created"
MEMBER_FIELDS = (
    "full_name,email,patron_status,last_charge_status,last_charge_date,next_charge_date,"
    "currently_entitled_amount_cents,will_pay_amount_cents,campaign_lifetime_support_cents,"
    "pledge_relationship_start,pledge_cadence,is_free_trial,is_gifted"
)
TIER_FIELDS = (
    "title,amount_cents,description,published,patron_count,url,user_limit,remaining,discord_role_ids"
)
CAMPAIGN_FIELDS = (
    "creation_name,summary,one_liner,url,vanity,image_url,patron_count,is_monthly,published_at,created_at"
)
POST_FIELDS = "title,content,url,published_at,is_paid,is_public,tiers,embed_url,embed_data,app_id,app_status"
WEBHOOK_FIELDS = "last_attempted_at,num_consecutive_times_failed,paused,triggers,uri"
# How long a webhook create waits for Patreon's answer, leaving the rest of the action's
# time to find the webhook when no answer comes (Patreon may have stored it anyway).
CREATE_WAIT_S = 12.0

# Useful answers by default: Patreon sends only type and id unless asked for fields.
# Applied when the caller names no ``include`` and no ``fields[...]``.
DEFAULTS: dict[str, dict[str, str]] = {
    "identity": {
        "include": "memberships,memberships.currently_entitled_tiers,memberships.campaign",
        "fields[user]": USER_FIELDS,
        "fields[member]": "patron_status,currently_entitled_amount_cents,last_charge_status,"
        "last_charge_date,next_charge_date,pledge_relationship_start,will_pay_amount_cents,is_free_trial",
        "fields[tier]": "title,amount_cents,url",
        "fields[campaign]": "creation_name,url,vanity",
    },
    "campaigns": {"include": "tiers", "fields[campaign]": CAMPAIGN_FIELDS, "fields[tier]": TIER_FIELDS},
    "members": {
        "include": "currently_entitled_tiers,user",
        "fields[member]": MEMBER_FIELDS,
        "fields[tier]": "title,amount_cents",
        "fields[user]": "full_name,vanity,image_url,thumb_url,url",
    },
    "posts": {"fields[post]": POST_FIELDS},
}


def with_defaults(kind: str, params: dict[str, str]) -> dict[str, str]:
    if "include" in params or any(key.startswith("fields[") for key in params):
        return params
    return {**DEFAULTS[kind], **params}


def _invalid(message: str) -> ActionError:
    return ActionError(INVALID_DATA, message, status=400)


def _param_error(ex: schema.ParamError) -> ActionError:
    return ActionError(ex.code, ex.message, status=400)


def principal_of(data: dict[str, Any]) -> str:
    value = data.get("principal")
    if value == CREATOR:
        return CREATOR
    if isinstance(value, dict) and set(value) == {"session"}:
        return session_principal(session_id_of(value["session"]))
    raise _invalid('principal must be "creator" or {"session": "<id>"}')


def session_id_of(value: Any) -> str:
    if not isinstance(value, str) or not SESSION_ID.fullmatch(value):
        raise _invalid("session must be a session id")
    return value


def params_of(data: dict[str, Any], allowed: frozenset[str]) -> dict[str, str]:
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise _invalid("params must be an object")
    try:
        return schema.normalize_query(params, allowed)
    except schema.ParamError as ex:
        raise _param_error(ex) from ex


def checked(value: Any, check: Callable[..., Any], *args: Any) -> Any:
    try:
        return check(value, *args)
    except schema.ParamError as ex:
        raise _param_error(ex) from ex


def flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if isinstance(value, bool):
        return value
    raise _invalid(f"{name} must be true or false")


def _paused(value: Any) -> bool:
    # Patreon's own clients send paused as a boolean or as the string "true"/"false".
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise ActionError(INVALID_PAUSED, "paused must be true or false", status=400)


def flatten_webhook(resource: dict[str, Any], *, with_secret: bool = False) -> dict[str, Any]:
    attributes = resource.get("attributes") or {}
    campaign = ((resource.get("relationships") or {}).get("campaign") or {}).get("data") or {}
    paused = attributes.get("paused")
    hook = {
        "id": str(resource.get("id")),
        "uri": attributes.get("uri"),
        "triggers": attributes.get("triggers"),
        "paused": _paused(paused) if paused in (True, False, "true", "false") else paused,
        "num_consecutive_times_failed": attributes.get("num_consecutive_times_failed"),
        "last_attempted_at": attributes.get("last_attempted_at"),
        "campaign_id": campaign.get("id"),
    }
    if with_secret:
        hook["secret"] = attributes.get("secret")
    return hook


class PatreonActions:
    def __init__(self, api: PatreonApi, oauth: OAuthClient, tokens: TokenStore, store: Store):
        self.api = api
        self.oauth = oauth
        self.tokens = tokens
        self.store = store

    # -- login --------------------------------------------------------------------
    @handles(actions.OAuthExchange)
    def exchange(self, data: dict[str, Any], deadline: float) -> dict[str, Any]:
        code, redirect_uri = data.get("code"), data.get("redirect_uri")
        if not isinstance(code, str) or not 0 < len(code) <= MAX_CODE_CHARS:
            raise ActionError(MISSING_AUTH_CODE, "code must be the code Patreon sent back", status=400)
        checked(redirect_uri, schema.check_uri)
        principal = session_principal(session_id_of(data.get("session")))
        try:
            grant = self.oauth.exchange_code(code, redirect_uri, deadline)
        except InvalidGrant:
            raise ActionError(
                PATREON_AUTH_FAILED,
                "Patreon refused the authorization code (invalid_grant: already used, expired, "
                "or issued for another redirect URI)",
                status=401,
            ) from None
        # Saved before first use, like every grant.
        token = self.tokens.save_grant(principal, grant)
        try:
            user, campaign_ids = self._login_identity(principal, token, deadline)
            self.tokens.set_user(principal, user["id"])
        except BaseException:
            # No half-login, whatever went wrong: without an identity the session is
            # not logged in, and its tokens must not outlive the failed exchange.
            self.tokens.forget(principal)
            raise
        log.info("logged in Patreon user %s as %s", user["id"], label(principal))
        return {"user": user, "campaign_ids": campaign_ids, "tokens": grant.public()}

    def _login_identity(
        self, principal: str, token: Token, deadline: float
    ) -> tuple[dict[str, Any], list[str]]:
        """The user a fresh token belongs to and their campaign ids; a malformed
        identity document is Patreon's fault: 502, never a 500."""
        params = {"fields[user]": USER_FIELDS}
        if "campaigns" in token.scopes:
            params |= {"include": "campaign", "fields[campaign]": "creation_name,url,vanity"}
        identity = self.api.call(principal, "GET", "/identity", deadline, params=params, token=token)
        user = identity.get("data") if isinstance(identity, dict) else None
        if not isinstance(user, dict) or not isinstance(user.get("id"), str):
            raise upstream_error("Patreon's identity has no user")
        relationships = user.get("relationships") or {}
        campaign = (relationships.get("campaign") or {}) if isinstance(relationships, dict) else None
        if not isinstance(campaign, dict):
            raise upstream_error("Patreon's identity has malformed relationships")
        linkage = campaign.get("data")
        if linkage is None:
            return user, []
        if not isinstance(linkage, dict) or not isinstance(linkage.get("id"), str) or not linkage["id"]:
            raise upstream_error("Patreon's identity has a malformed campaign")
        return user, [linkage["id"]]

    @handles(actions.OAuthRefresh)
    def refresh(self, data: dict[str, Any], deadline: float) -> dict[str, Any]:
        principal = principal_of(data)
        token = self.tokens.refresh(principal, deadline)
        expires_in = None if token.expires_at is None else max(0, round(token.expires_at - time.time()))
        return {"tokens": {"expires_in": expires_in, "scope": token.scope, "token_type": token.token_type}}

    @handles(actions.OAuthForget)
    def forget(self, data: dict[str, Any], deadline: float) -> dict[str, Any]:
        principal = session_principal(session_id_of(data.get("session")))
        return {"forgotten": self.tokens.forget(principal)}

    # -- reads ----------------------------------------------------------------------
    @handles(actions.IdentityGet)
    def identity(self, data: dict[str, Any], deadline: float) -> Document:
        principal = principal_of(data)
        params = with_defaults("identity", params_of(data, schema.SINGLE))
        token = self.tokens.current(principal, deadline)
        if "campaigns" in token.scopes and params.get("include") == DEFAULTS["identity"]["include"]:
            params["include"] += ",campaign"
        return self.api.document(principal, "/identity", deadline, params=params, token=token)

    @handles(actions.CampaignsList)
    def campaigns(self, data: dict[str, Any], deadline: float) -> Document:
        params = with_defaults("campaigns", params_of(data, schema.SINGLE))
        return self.api.document(principal_of(data), "/campaigns", deadline, params=params)

    def _listing(self, kind: str, data: dict[str, Any], deadline: float) -> Document:
        principal = principal_of(data)
        campaign_id = checked(
            data.get("campaign_id"), schema.check_id, schema.CAMPAIGN_ID, INVALID_CAMPAIGN_ID, "campaign id"
        )
        params = with_defaults(kind, params_of(data, schema.LISTING))
        path = f"/campaigns/{campaign_id}/{kind}"
        if not flag(data, "all"):
            return self.api.document(principal, path, deadline, params=params)
        if "page[count]" not in params:
            pledges = "pledge_history" in params.get("include", "")
            params["page[count]"] = str(
                schema.MAX_PAGE_COUNT_WITH_PLEDGE_HISTORY if pledges else schema.MAX_PAGE_COUNT
            )
        # Merged from the pages' own text (worker.page_merge); web passes the bytes on.
        return Document(self.api.get_all_raw(principal, path, params, deadline))

    @handles(actions.MembersList)
    def members(self, data: dict[str, Any], deadline: float) -> Document:
        return self._listing("members", data, deadline)

    @handles(actions.PostsList)
    def posts(self, data: dict[str, Any], deadline: float) -> Document:
        return self._listing("posts", data, deadline)

    @handles(actions.MembersGet)
    def member(self, data: dict[str, Any], deadline: float) -> Document:
        member_id = checked(
            data.get("member_id"), schema.check_id, schema.MEMBER_ID, INVALID_MEMBER_ID, "member id"
        )
        params = with_defaults("members", params_of(data, schema.SINGLE))
        return self.api.document(principal_of(data), f"/members/{member_id.lower()}", deadline, params=params)

    @handles(actions.PostsGet)
    def post(self, data: dict[str, Any], deadline: float) -> Document:
        post_id = checked(data.get("post_id"), schema.check_id, schema.POST_ID, INVALID_POST_ID, "post id")
        params = with_defaults("posts", params_of(data, schema.SINGLE))
        return self.api.document(principal_of(data), f"/posts/{post_id}", deadline, params=params)

    # -- webhooks (the creator's token) --------------------------------------------------
    @handles(actions.WebhooksList)
    def webhooks_list(self, data: dict[str, Any], deadline: float) -> dict[str, Any]:
        params = {"fields[webhook]": WEBHOOK_FIELDS, "include": "campaign", "fields[campaign]": "vanity"}
        document = self.api.get_all(CREATOR, "/webhooks", params, deadline)
        known = webhook_secrets.known_ids(self.store)
        hooks = []
        for resource in document["data"]:
            hook = flatten_webhook(resource)
            hook["secret_stored"] = hook["id"] in known
            hooks.append(hook)
        return {"webhooks": hooks}

    @handles(actions.WebhooksCreate)
    def webhooks_create(self, data: dict[str, Any], deadline: float) -> dict[str, Any]:
        uri = checked(data.get("uri"), schema.check_uri)
        triggers = checked(data.get("triggers"), schema.check_triggers)
        campaign_id = data.get("campaign_id")
        if campaign_id is None:
            campaign_id = self._only_campaign(deadline)
        checked(campaign_id, schema.check_id, schema.CAMPAIGN_ID, INVALID_CAMPAIGN_ID, "campaign id")
        body = {
            "data": {
                "type": "webhook",
                "attributes": {"triggers": triggers, "uri": uri},
                "relationships": {"campaign": {"data": {"type": "campaign", "id": campaign_id}}},
            }
        }
        # Idempotent (issue 16, finding 3): a webhook with this URI and these triggers that
        # already exists (a create that timed out, retried) is adopted, not made twice.
        existing = self._find_webhook(uri, triggers, campaign_id, deadline)
        if existing is not None:
            return {"webhook": self._adopt(existing, campaign_id, deadline)}
        try:
            document = self.api.call(
                CREATOR, "POST", "/webhooks", min(deadline, time.monotonic() + CREATE_WAIT_S), json_body=body
            )
        except (UpstreamError, ActionError) as ex:
            if isinstance(ex, ActionError) and ex.code != PATREON_UPSTREAM_ERROR:
                raise
            # No answer (a timeout, a 5xx, a lost connection): Patreon may have stored it.
            log.warning(
                "webhook create for campaign %s got no answer: looking for it at Patreon", campaign_id
            )
            found = self._find_webhook(uri, triggers, campaign_id, deadline)
            if found is None:
                raise
            return {"webhook": self._adopt(found, campaign_id, deadline)}
        resource = (document or {}).get("data")
        if not isinstance(resource, dict) or resource.get("id") is None:
            raise upstream_error("Patreon created a webhook but did not say which")
        hook = flatten_webhook(resource, with_secret=True)
        if not hook["campaign_id"]:
            hook["campaign_id"] = campaign_id
        secret = hook.get("secret")
        if isinstance(secret, str) and secret:
            webhook_secrets.save(self.store, hook["id"], secret)
            hook["secret_stored"] = True
        else:
            log.warning(
                "webhook %s was created but Patreon sent no secret: its deliveries cannot be verified",
                hook["id"],
            )
            hook["secret_stored"] = False
        log.info("webhook %s created for campaign %s (%s)", hook["id"], campaign_id, ",".join(triggers))
        return {"webhook": hook}

    def _find_webhook(
        self, uri: str, triggers: list[str], campaign_id: str, deadline: float
    ) -> dict[str, Any] | None:
        """The creator's webhook with this URI, these triggers (in any order) and campaign."""
        params = {
            "fields[webhook]": WEBHOOK_FIELDS + ",secret",
            "include": "campaign",
            "fields[campaign]": "vanity",
        }
        document = self.api.get_all(CREATOR, "/webhooks", params, deadline)
        for resource in document["data"]:
            attributes = resource.get("attributes") or {}
            campaign = ((resource.get("relationships") or {}).get("campaign") or {}).get("data") or {}
            if (
                attributes.get("uri") == uri
                and sorted(attributes.get("triggers") or []) == sorted(triggers)
                and campaign.get("id") in (None, campaign_id)
            ):
                return resource
        return None

    def _adopt(self, resource: dict[str, Any], campaign_id: str, deadline: float) -> dict[str, Any]:
        """A webhook found at Patreon: its secret recovered (stored), or it is removed."""
        hook = flatten_webhook(resource, with_secret=True)
        hook["campaign_id"] = hook["campaign_id"] or campaign_id
        hook["recovered"] = True
        secret = hook.get("secret")
        if isinstance(secret, str) and secret:
            webhook_secrets.save(self.store, hook["id"], secret)
            hook["secret_stored"] = True
        elif hook["id"] in webhook_secrets.known_ids(self.store):
            hook["secret_stored"] = True
        else:
            # Its secret cannot be had: a webhook whose deliveries we cannot verify is
            # worse than none. Remove it; the caller's retry creates a fresh one.
            self.api.call(CREATOR, "DELETE", f"/webhooks/{hook['id']}", deadline)
            raise upstream_error(
                f"webhook {hook['id']} was created without an answer and its secret cannot be read:"
                " it was removed; create it again"
            )
        log.info(
            "webhook %s recovered for campaign %s: its secret is stored", hook["id"], hook["campaign_id"]
        )
        return hook

    def _only_campaign(self, deadline: float) -> str:
        document = self.api.get(CREATOR, "/campaigns", {}, deadline)
        ids = [item.get("id") for item in document.get("data") or [] if isinstance(item, dict)]
        if len(ids) != 1 or not isinstance(ids[0], str):
            raise ActionError(
                CAMPAIGN_REQUIRED,
                f"the creator has {len(ids)} campaigns: name one in campaign_id",
                status=400,
            )
        return ids[0]

    @handles(actions.WebhooksUpdate)
    def webhooks_update(self, data: dict[str, Any], deadline: float) -> dict[str, Any]:
        webhook_id = checked(
            data.get("webhook_id"), schema.check_id, schema.WEBHOOK_ID, INVALID_WEBHOOK_ID, "webhook id"
        )
        attributes: dict[str, Any] = {}
        if "paused" in data:
            attributes["paused"] = _paused(data["paused"])
        if "triggers" in data:
            attributes["triggers"] = checked(data["triggers"], schema.check_triggers)
        if "uri" in data:
            attributes["uri"] = checked(data["uri"], schema.check_uri)
        if not attributes:
            raise ActionError(NOTHING_TO_UPDATE, "give paused, triggers or uri", status=400)
        body = {"data": {"type": "webhook", "id": webhook_id, "attributes": attributes}}
        document = self.api.call(CREATOR, "PATCH", f"/webhooks/{webhook_id}", deadline, json_body=body)
        resource = (document or {}).get("data") if document else None
        hook = flatten_webhook(resource) if isinstance(resource, dict) else {"id": webhook_id, **attributes}
        hook["secret_stored"] = webhook_id in webhook_secrets.known_ids(self.store)
        log.info("webhook %s updated (%s)", webhook_id, ",".join(sorted(attributes)))
        return {"webhook": hook}

    @handles(actions.WebhooksDelete)
    def webhooks_delete(self, data: dict[str, Any], deadline: float) -> dict[str, Any]:
        webhook_id = checked(
            data.get("webhook_id"), schema.check_id, schema.WEBHOOK_ID, INVALID_WEBHOOK_ID, "webhook id"
        )
        try:
            self.api.call(CREATOR, "DELETE", f"/webhooks/{webhook_id}", deadline)
        except ActionError as ex:
            if ex.code == NOT_FOUND:
                # Gone at Patreon either way: its secret can no longer sign anything.
                webhook_secrets.delete(self.store, webhook_id)
            raise
        webhook_secrets.delete(self.store, webhook_id)
        log.info("webhook %s deleted", webhook_id)
        return {"deleted": webhook_id}


Method = Callable[[dict[str, Any], float], dict[str, Any] | Document]


def _handler(method: Method) -> Callable[[dict[str, Any], CallContext], dict[str, Any] | Document]:
    @functools.wraps(method)
    def handle(data: dict[str, Any], ctx: CallContext) -> dict[str, Any] | Document:
        token = request_id_var.set(ctx.request_id or "-")
        try:
            return method(data, ctx.deadline - REPLY_MARGIN_S)
        except PatreonError as ex:
            raise wire_error(ex) from ex
        finally:
            request_id_var.reset(token)

    return handle


def build_actions(config: WorkerSettings, store: Store) -> PatreonActions:
    if config.rate_limit_shared:
        # Several workers: one budget for all of them, in the store.
        limiter = SharedRateLimiter(store, config.rate_limit_per_2_seconds, config.rate_limit_per_minute)
    else:
        limiter = RateLimiter(config.rate_limit_per_2_seconds, config.rate_limit_per_minute)
    http = PatreonHttp(config, limiter)
    oauth = OAuthClient(config, http)
    pair = (config.creator_access_token, config.creator_refresh_token)
    tokens = TokenStore(
        store, oauth, creator_pair=pair if all(pair) else None, holder=worker_holder(config)
    )
    return PatreonActions(PatreonApi(http, tokens), oauth, tokens, store)


def attach(
    registry: ActionRegistry, config: WorkerSettings, store: Store, actions: PatreonActions | None = None
) -> PatreonActions:
    """Register every ``@handles`` method of the actions (login, API reads, webhooks)."""
    patreon = actions or build_actions(config, store)
    for method in marked_handlers(patreon).values():
        registry.add(_handler(method))
    return patreon
