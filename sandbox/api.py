"""API v2 resources under `/api/oauth2/v2/`.

Each responder checks its scope, parses `fields[...]`, `include` and paging, reads
the world under its lock, and sets `resp.media`. The `ApiGate` middleware has already
authenticated the token and charged the rate limits.

Scope rules (PATREON.md, Patreon's v2 docs):
- `/identity` needs `identity`; the user's `email` needs `identity[email]`;
  `include=memberships` needs no more (the user's membership to the client's
  campaign, the only campaign here); `include=campaign` needs `campaigns`.
- `/campaigns`, `/campaigns/{id}` need `campaigns` and show only the token user's
  own campaign (a patron's token lists none and gets 403 on the id).
- members need `campaigns.members` and campaign ownership; a member's (or its user's)
  `email` needs `campaigns.members[email]`; `include=address` needs
  `campaigns.members.address`.
- posts need `campaigns.posts`; webhooks need `w:campaigns.webhook`, and a client
  sees only the webhooks it created.
A missing scope is a 403 naming it; an email the token may not see is left out.
"""

from __future__ import annotations

import copy
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

import falcon

from sandbox.data import World
from sandbox.errors import forbidden, missing_scope, not_found, parameter_invalid
from sandbox.jsonapi import Query, Serializer, Visibility, parse_query, required_scopes
from sandbox.oauth import Grant
from sandbox.pagination import (
    MAX_COUNT,
    MAX_COUNT_WITH_PLEDGE_HISTORY,
    PageRequest,
    Paginator,
    parse_page,
)
from sandbox.schema import SCHEMA, self_link
from sandbox.settings import SandboxSettings
from sandbox.webhooks import V2_TRIGGERS, WebhookRegistry

PREFIX = "/api/oauth2/v2"


def require(grant: Grant, scope: str) -> None:
    if not grant.has(scope):
        raise missing_scope(scope)


def visibility(grant: Grant, world: World) -> Visibility:
    own = world.campaign_of(grant.user_id)
    own_id = own.id if own else None
    members_email = grant.has("campaigns.members[email]")
    identity_email = grant.has("identity[email]")

    def visible(type_name: str, attribute: str, obj: Any) -> bool:
        if attribute != "email":
            return True
        if type_name == "member":
            return members_email and obj.campaign_id == own_id
        if type_name == "user":
            if obj.id == grant.user_id:
                return identity_email
            return members_email and any(m.campaign_id == own_id for m in world.memberships_of(obj.id))
        return True

    return visible


class Api:
    """What every resource needs: the world, the webhooks, the paginator."""

    def __init__(self, settings: SandboxSettings, world: World, webhooks: WebhookRegistry):
        self.settings = settings
        self.world = world
        self.webhooks = webhooks
        self.paginator = Paginator()

    def query(self, req: falcon.Request, grant: Grant, primary: str) -> Query:
        query = parse_query(req.params, SCHEMA, primary)
        for scope in required_scopes(SCHEMA, primary, query.include):
            require(grant, scope)
        return query

    def document(self, grant: Grant, query: Query, data: Any, type_name: str, many: bool) -> dict[str, Any]:
        serializer = Serializer(SCHEMA, self.world, query, visibility(grant, self.world))
        return serializer.document(data, type_name, many)

    def owned_campaign(self, grant: Grant, campaign_id: str):
        campaign = self.world.campaigns.get(campaign_id)
        if campaign is None:
            raise not_found(f"No campaign with id {campaign_id}.")
        if campaign.creator_id != grant.user_id:
            raise forbidden("This token's user does not own this campaign.")
        return campaign

    def paged(
        self,
        req: falcon.Request,
        grant: Grant,
        query: Query,
        collection: str,
        type_name: str,
        items,
        page: PageRequest,
    ) -> dict[str, Any]:
        attributes = SCHEMA[type_name].attributes
        result = self.paginator.page(
            collection,
            items,
            page,
            self.world.version,
            lambda obj, name: attributes[name](obj, self.world),
        )
        doc = self.document(grant, query, result.items, type_name, many=True)
        doc["meta"] = {"pagination": {"cursors": {"next": result.next_cursor}, "total": result.total}}
        # Every page carries `links` (the last one without `next`): the official client's
        # paging loop (`API.extract_cursor(doc, "links.next")`) raises when `links` is
        # absent and stops when `next` is missing, so that is what Patreon must send.
        doc["links"] = {"self": page_url(req, req.get_param("page[cursor]"))}
        if result.next_cursor:
            doc["links"]["next"] = page_url(req, result.next_cursor)
        return doc


def page_url(req: falcon.Request, cursor: str | None) -> str:
    """This request's URL with `page[cursor]` set to `cursor` (left out when None)."""
    pairs: list[tuple[str, str]] = []
    for key, value in req.params.items():
        if key == "page[cursor]":
            continue
        for item in value if isinstance(value, list) else [value]:
            pairs.append((key, item))
    if cursor:
        pairs.append(("page[cursor]", cursor))
    query = urlencode(pairs)
    return f"{req.prefix}{req.path}?{query}" if query else f"{req.prefix}{req.path}"


class Identity:
    def __init__(self, api: Api):
        self.api = api

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        grant: Grant = req.context.grant
        require(grant, "identity")
        query = self.api.query(req, grant, "user")
        world = self.api.world
        with world.lock:
            user = world.users.get(grant.user_id)
            if user is None:
                raise not_found("The token's user no longer exists.")
            doc = self.api.document(grant, query, user, "user", many=False)
        doc["links"] = {"self": self_link("user", user.id, req.prefix)}
        resp.media = doc


class Campaigns:
    def __init__(self, api: Api):
        self.api = api

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        grant: Grant = req.context.grant
        require(grant, "campaigns")
        query = self.api.query(req, grant, "campaign")
        world = self.api.world
        with world.lock:
            own = world.campaign_of(grant.user_id)
            campaigns = [own] if own else []
            doc = self.api.document(grant, query, campaigns, "campaign", many=True)
        doc["meta"] = {"pagination": {"cursors": {"next": None}, "total": len(campaigns)}}
        resp.media = doc


class Campaign:
    def __init__(self, api: Api):
        self.api = api

    def on_get(self, req: falcon.Request, resp: falcon.Response, campaign_id: str) -> None:
        grant: Grant = req.context.grant
        require(grant, "campaigns")
        query = self.api.query(req, grant, "campaign")
        with self.api.world.lock:
            campaign = self.api.owned_campaign(grant, campaign_id)
            doc = self.api.document(grant, query, campaign, "campaign", many=False)
        doc["links"] = {"self": self_link("campaign", campaign_id, req.prefix)}
        resp.media = doc


class CampaignListing:
    """``/campaigns/{id}/members`` and ``/campaigns/{id}/posts``: one page of a campaign's
    members or posts, for the campaign's owner."""

    def __init__(self, api: Api, kind: str, type_name: str, scope: str, items: str):
        self.api = api
        self.kind = kind  # "members" | "posts": the path segment and the cursor's namespace
        self.type_name = type_name
        self.scope = scope
        self.items = items  # the World method listing a campaign's resources

    def on_get(self, req: falcon.Request, resp: falcon.Response, campaign_id: str) -> None:
        grant: Grant = req.context.grant
        require(grant, self.scope)
        query = self.api.query(req, grant, self.type_name)
        # Patreon caps a page at 500 when it carries pledge history, 1000 otherwise.
        max_count = MAX_COUNT_WITH_PLEDGE_HISTORY if "pledge_history" in query.include else MAX_COUNT
        page = parse_page(req.params, self.kind, max_count)
        world = self.api.world
        items = getattr(world, self.items)
        with world.lock:
            self.api.owned_campaign(grant, campaign_id)
            resp.media = self.api.paged(
                req,
                grant,
                query,
                f"{self.kind}/{campaign_id}",
                self.type_name,
                lambda: items(campaign_id),
                page,
            )


class SingleResource:
    """``/members/{id}`` and ``/posts/{id}``: one resource of a campaign the token owns."""

    def __init__(self, api: Api, type_name: str, scope: str, table: str):
        self.api = api
        self.type_name = type_name
        self.scope = scope
        self.table = table  # the World attribute holding these resources by id

    def on_get(self, req: falcon.Request, resp: falcon.Response, resource_id: str) -> None:
        grant: Grant = req.context.grant
        require(grant, self.scope)
        query = self.api.query(req, grant, self.type_name)
        world = self.api.world
        with world.lock:
            resource = getattr(world, self.table).get(resource_id)
            if resource is None:
                raise not_found(f"No {self.type_name} with id {resource_id}.")
            self.api.owned_campaign(grant, resource.campaign_id)
            doc = self.api.document(grant, query, resource, self.type_name, many=False)
        doc["links"] = {"self": self_link(self.type_name, resource_id, req.prefix)}
        resp.media = doc


# ------------------------------------------------------------------ webhooks


def _read_json(req: falcon.Request) -> dict[str, Any]:
    raw = req.bounded_stream.read()
    if not raw:
        raise parameter_invalid("A JSON:API request body is required.")
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise parameter_invalid("The request body is not valid JSON.") from None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise parameter_invalid("The request body must be a JSON:API document with `data`.")
    if data.get("type") != "webhook":
        raise parameter_invalid("data.type must be 'webhook'.")
    attributes = data.get("attributes", {})
    if not isinstance(attributes, dict):
        raise parameter_invalid("data.attributes must be an object.")
    return data


def _triggers(value: Any) -> list[str]:
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise parameter_invalid("attributes.triggers must be a non-empty list of triggers.")
    unknown = [t for t in value if t not in V2_TRIGGERS]
    if unknown:
        raise parameter_invalid(f"Unknown trigger(s) {', '.join(unknown)}; valid: {', '.join(V2_TRIGGERS)}.")
    return value


def _uri(value: Any) -> str:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
        raise parameter_invalid("attributes.uri must be an absolute http(s) URL.")
    return value


def _paused(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise parameter_invalid("attributes.paused must be true or false.")


class _WebhookBase:
    def __init__(self, api: Api):
        self.api = api

    def _visible(self, grant: Grant) -> list:
        world = self.api.world
        with world.lock:
            own = world.campaign_of(grant.user_id)
        own_id = own.id if own else None
        return [
            copy.copy(hook)
            for hook in self.api.webhooks.all()
            if hook.client_id == grant.client_id and hook.campaign_id == own_id
        ]

    def _one(self, grant: Grant, hook_id: str):
        for hook in self._visible(grant):
            if hook.id == hook_id:
                return hook
        raise not_found(f"No webhook with id {hook_id} for this client.")

    def _full_query(self, req: falcon.Request, grant: Grant) -> Query:
        """Writes answer with every webhook attribute (the secret!) unless fields[] says."""
        query = self.api.query(req, grant, "webhook")
        if "webhook" in query.fields:
            return query
        fields = dict(query.fields)
        fields["webhook"] = tuple(SCHEMA["webhook"].attributes)
        return Query(fields, query.include)

    def _respond(self, req, resp, grant: Grant, query: Query, hook_id: str, status=200) -> None:
        hook = self._one(grant, hook_id)
        with self.api.world.lock:
            doc = self.api.document(grant, query, hook, "webhook", many=False)
        doc["links"] = {"self": f"{req.prefix}{PREFIX}/webhooks/{hook_id}"}
        resp.status = status
        resp.media = doc


class Webhooks(_WebhookBase):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        grant: Grant = req.context.grant
        require(grant, "w:campaigns.webhook")
        query = self.api.query(req, grant, "webhook")
        hooks = self._visible(grant)
        with self.api.world.lock:
            doc = self.api.document(grant, query, hooks, "webhook", many=True)
        doc["meta"] = {"pagination": {"cursors": {"next": None}, "total": len(hooks)}}
        resp.media = doc

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        grant: Grant = req.context.grant
        require(grant, "w:campaigns.webhook")
        query = self._full_query(req, grant)
        data = _read_json(req)
        attributes = data.get("attributes") or {}
        triggers = _triggers(attributes.get("triggers"))
        uri = _uri(attributes.get("uri"))
        campaign_ref = ((data.get("relationships") or {}).get("campaign") or {}).get("data")
        if not isinstance(campaign_ref, dict) or not campaign_ref.get("id"):
            raise parameter_invalid("relationships.campaign.data.id is required.")
        if campaign_ref.get("type", "campaign") != "campaign":
            raise parameter_invalid("relationships.campaign.data.type must be 'campaign'.")
        with self.api.world.lock:
            campaign = self.api.owned_campaign(grant, str(campaign_ref["id"]))
        hook = self.api.webhooks.create(grant.client_id, campaign.id, uri, triggers)
        self._respond(req, resp, grant, query, hook.id, status=201)


class WebhookResource(_WebhookBase):
    def on_get(self, req: falcon.Request, resp: falcon.Response, hook_id: str) -> None:
        """One webhook: the official v2 client's `API.get_webhooks_by_id` calls this."""
        grant: Grant = req.context.grant
        require(grant, "w:campaigns.webhook")
        query = self.api.query(req, grant, "webhook")
        self._respond(req, resp, grant, query, hook_id)

    def on_patch(self, req: falcon.Request, resp: falcon.Response, hook_id: str) -> None:
        grant: Grant = req.context.grant
        require(grant, "w:campaigns.webhook")
        query = self._full_query(req, grant)
        self._one(grant, hook_id)
        data = _read_json(req)
        if data.get("id") is not None and str(data["id"]) != hook_id:
            raise parameter_invalid("data.id does not match the webhook in the URL.")
        attributes = data.get("attributes") or {}
        triggers = _triggers(attributes["triggers"]) if "triggers" in attributes else None
        uri = _uri(attributes["uri"]) if "uri" in attributes else None
        paused = None
        for name in ("paused", "is_paused"):  # the docs have used both names
            if name in attributes:
                paused = _paused(attributes[name])
        if self.api.webhooks.update(hook_id, triggers=triggers, uri=uri, paused=paused) is None:
            raise not_found(f"No webhook with id {hook_id} for this client.")
        self._respond(req, resp, grant, query, hook_id)

    def on_delete(self, req: falcon.Request, resp: falcon.Response, hook_id: str) -> None:
        grant: Grant = req.context.grant
        require(grant, "w:campaigns.webhook")
        self._one(grant, hook_id)
        self.api.webhooks.delete(hook_id)
        resp.status = falcon.HTTP_204


def add_routes(app: falcon.App, api: Api) -> None:
    app.add_route(f"{PREFIX}/identity", Identity(api))
    app.add_route(f"{PREFIX}/campaigns", Campaigns(api))
    app.add_route(f"{PREFIX}/campaigns/{{campaign_id}}", Campaign(api))
    members = CampaignListing(api, "members", "member", "campaigns.members", "members_of")
    posts = CampaignListing(api, "posts", "post", "campaigns.posts", "posts_of")
    app.add_route(f"{PREFIX}/campaigns/{{campaign_id}}/members", members)
    app.add_route(
        f"{PREFIX}/members/{{resource_id}}", SingleResource(api, "member", "campaigns.members", "members")
    )
    app.add_route(f"{PREFIX}/campaigns/{{campaign_id}}/posts", posts)
    app.add_route(f"{PREFIX}/posts/{{resource_id}}", SingleResource(api, "post", "campaigns.posts", "posts"))
    app.add_route(f"{PREFIX}/webhooks", Webhooks(api))
    app.add_route(f"{PREFIX}/webhooks/{{hook_id}}", WebhookResource(api))
