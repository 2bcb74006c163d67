"""Patreon's API v2 resource types: their attributes and relationships.

Each attribute is a getter `(obj, world) -> value`; each relationship names its
target type and how to reach it, and the scope needed to include it (if any).
Attribute names follow Patreon's v2 documentation; asking for any other name in
`fields[<type>]` is a 400, as asking Patreon for a misspelt field is.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any

from sandbox.data import CURRENCY, SITE, World
from sandbox.jsonapi import Relationship, ResourceType, Schema


def _attrs(*names: str) -> dict[str, Any]:
    return {name: (lambda getter: lambda obj, world: getter(obj))(attrgetter(name)) for name in names}


def _const(value: Any):
    return lambda obj, world: value


def _campaign_of(obj: Any, world: World):
    return world.campaigns.get(obj.campaign_id)


USER = ResourceType(
    "user",
    _attrs(
        "about",
        "can_see_nsfw",
        "created",
        "email",
        "first_name",
        "full_name",
        "hide_pledges",
        "image_url",
        "is_creator",
        "is_email_verified",
        "last_name",
        "like_count",
        "thumb_url",
        "url",
        "vanity",
    )
    | {"social_connections": lambda user, world: dict(user.social_connections)},
    {
        "campaign": Relationship(
            "campaign", False, lambda user, world: world.campaign_of(user.id), scope="campaigns"
        ),
        "memberships": Relationship("member", True, lambda user, world: world.memberships_of(user.id)),
    },
)

CAMPAIGN = ResourceType(
    "campaign",
    _attrs(
        "created_at",
        "creation_name",
        "discord_server_id",
        "one_liner",
        "published_at",
        "summary",
        "url",
        "vanity",
    )
    | {
        "currency": lambda c, w: CURRENCY,
        "earnings_visibility": _const("public"),
        "google_analytics_id": _const(None),
        "has_rss": _const(False),
        "has_sent_rss_notify": _const(False),
        "image_small_url": lambda c, w: f"https://c10.patreonusercontent.com/small/{c.id}.png",
        "image_url": lambda c, w: f"https://c10.patreonusercontent.com/banner/{c.id}.png",
        "is_charged_immediately": _const(True),
        "is_monthly": _const(True),
        "is_nsfw": _const(False),
        "main_video_embed": _const(None),
        "main_video_url": _const(None),
        "name": lambda c, w: w.users[c.creator_id].full_name,
        "patron_count": lambda c, w: w.patron_count(),
        "pay_per_name": _const("month"),
        "pledge_url": lambda c, w: f"/checkout/{c.vanity}",
        "rss_artwork_url": _const(None),
        "rss_feed_title": _const(None),
        "show_earnings": _const(True),
        "thanks_embed": _const(None),
        "thanks_msg": _const("Thank you for supporting the sandbox campaign!"),
        "thanks_video_url": _const(None),
    },
    {
        "benefits": Relationship("benefit", True, lambda c, w: [w.benefits[i] for i in c.benefit_ids]),
        "campaign_installations": Relationship("campaign_installation", True, lambda c, w: []),
        "categories": Relationship("category", True, lambda c, w: []),
        "creator": Relationship("user", False, lambda c, w: w.users.get(c.creator_id)),
        # Deprecated by Patreon: still a valid include, always empty.
        "goals": Relationship("goal", True, lambda c, w: []),
        "tiers": Relationship("tier", True, lambda c, w: [w.tiers[i] for i in c.tier_ids]),
    },
)

TIER = ResourceType(
    "tier",
    _attrs(
        "amount_cents",
        "created_at",
        "description",
        "discord_role_ids",
        "post_count",
        "published",
        "requires_shipping",
        "title",
        "url",
        "user_limit",
    )
    | {
        "edited_at": lambda t, w: t.created_at,
        "image_url": _const(None),
        "patron_count": lambda t, w: w.tier_patron_count(t.id),
        "published_at": lambda t, w: t.created_at,
        "remaining": lambda t, w: (
            None if t.user_limit is None else max(0, t.user_limit - w.tier_patron_count(t.id))
        ),
        "unpublished_at": _const(None),
    },
    {
        "benefits": Relationship("benefit", True, lambda t, w: [w.benefits[i] for i in t.benefit_ids]),
        "campaign": Relationship("campaign", False, lambda t, w: next(iter(w.campaigns.values()), None)),
        "tier_image": Relationship("media", False, lambda t, w: None),
    },
)

BENEFIT = ResourceType(
    "benefit",
    _attrs(
        "benefit_type",
        "created_at",
        "deliverables_due_today_count",
        "delivered_deliverables_count",
        "description",
        "is_deleted",
        "is_published",
        "next_deliverable_due_date",
        "not_delivered_deliverables_count",
        "rule_type",
        "title",
    )
    | {
        "app_external_id": _const(None),
        "app_meta": _const(None),
        "is_ended": _const(False),
        "tiers_count": lambda b, w: len(b.tier_ids),
    },
    {
        "campaign": Relationship("campaign", False, lambda b, w: next(iter(w.campaigns.values()), None)),
        "campaign_installation": Relationship("campaign_installation", False, lambda b, w: None),
        "deliverables": Relationship("deliverable", True, lambda b, w: []),
        "tiers": Relationship("tier", True, lambda b, w: [w.tiers[i] for i in b.tier_ids]),
    },
)

GOAL = ResourceType(
    "goal",
    _attrs("amount_cents", "created_at", "description", "reached_at", "title")
    | {
        "completed_percentage": lambda g, w: min(100, w.monthly_cents() * 100 // g.amount_cents),
    },
    {
        "campaign": Relationship("campaign", False, lambda g, w: next(iter(w.campaigns.values()), None)),
    },
)

MEMBER = ResourceType(
    "member",
    _attrs(
        "campaign_lifetime_support_cents",
        "currently_entitled_amount_cents",
        "is_free_trial",
        "is_gifted",
        "last_charge_date",
        "last_charge_status",
        "next_charge_date",
        "note",
        "patron_status",
        "pledge_cadence",
        "pledge_relationship_start",
        "will_pay_amount_cents",
    )
    | {
        "email": lambda m, w: w.users[m.user_id].email,
        "full_name": lambda m, w: w.users[m.user_id].full_name,
        "is_follower": _const(False),
        # Deprecated for campaign_lifetime_support_cents but still served (Patreon's
        # docs list it; the official client and the WordPress plugin ask for it).
        "lifetime_support_cents": lambda m, w: m.campaign_lifetime_support_cents,
    },
    {
        "address": Relationship(
            "address",
            False,
            lambda m, w: w.addresses.get(m.address_id) if m.address_id else None,
            scope="campaigns.members.address",
        ),
        "campaign": Relationship("campaign", False, _campaign_of),
        "currently_entitled_tiers": Relationship("tier", True, lambda m, w: [w.tiers[i] for i in m.tier_ids]),
        "pledge_history": Relationship(
            "pledge-event", True, lambda m, w: [w.pledge_events[i] for i in m.pledge_event_ids]
        ),
        "user": Relationship("user", False, lambda m, w: w.users.get(m.user_id)),
    },
)

ADDRESS = ResourceType(
    "address",
    _attrs(
        "addressee",
        "city",
        "confirmed",
        "confirmed_at",
        "country",
        "created_at",
        "line_1",
        "line_2",
        "phone_number",
        "postal_code",
        "state",
    ),
    {
        "campaigns": Relationship("campaign", True, lambda a, w: list(w.campaigns.values())),
        "user": Relationship("user", False, lambda a, w: w.users.get(a.user_id)),
    },
)

PLEDGE_EVENT = ResourceType(
    "pledge-event",
    _attrs(
        "amount_cents",
        "currency_code",
        "date",
        "payment_status",
        "pledge_payment_status",
        "tier_id",
        "tier_title",
        "type",
    ),
    {
        "campaign": Relationship("campaign", False, _campaign_of),
        "patron": Relationship("user", False, lambda e, w: w.users.get(e.user_id)),
        "tier": Relationship("tier", False, lambda e, w: w.tiers.get(e.tier_id or "")),
    },
)

POST = ResourceType(
    "post",
    _attrs(
        "app_id",
        "app_status",
        "content",
        "embed_data",
        "embed_url",
        "is_paid",
        "is_public",
        "published_at",
        "title",
        "url",
    )
    | {"tiers": lambda p, w: [int(t) for t in p.tier_ids]},
    {
        "campaign": Relationship("campaign", False, _campaign_of),
        "user": Relationship("user", False, lambda p, w: w.users.get(p.user_id)),
    },
)

# Types Patreon documents that the sandbox never fills: they exist so that
# `fields[client]`, `fields[deliverable]` and `fields[media]` are valid, as on Patreon.
CLIENT = ResourceType(
    "client",
    {
        "author_name": _const("Sam Sandbox"),
        "client_secret": _const(None),  # never served by the sandbox
        "default_scopes": _const("identity identity[email]"),
        "description": _const("The app registered with the Patreon sandbox."),
        "domain": _const(None),
        "icon_url": _const(None),
        "name": _const("Patreon sandbox client"),
        "privacy_policy_url": _const(None),
        "redirect_uris": _const(None),
        "tos_url": _const(None),
        "version": _const(2),
    },
)

DELIVERABLE = ResourceType(
    "deliverable",
    _attrs("completed_at", "delivery_status", "due_at"),
    {
        "benefit": Relationship("benefit", False, lambda d, w: w.benefits.get(d.benefit_id)),
        "campaign": Relationship("campaign", False, _campaign_of),
        "member": Relationship("member", False, lambda d, w: w.members.get(d.member_id)),
        "user": Relationship("user", False, lambda d, w: w.users.get(d.user_id)),
    },
)

MEDIA = ResourceType(
    "media",
    _attrs(
        "created_at",
        "download_url",
        "file_name",
        "image_urls",
        "metadata",
        "mimetype",
        "owner_id",
        "owner_relationship",
        "owner_type",
        "size_bytes",
        "state",
        "upload_expires_at",
        "upload_parameters",
        "upload_url",
    ),
)


# Relationships Patreon serves that the sandbox has nothing behind (third-party app
# installations, campaign categories): valid includes, always empty.
CAMPAIGN_INSTALLATION = ResourceType("campaign_installation", {})
CATEGORY = ResourceType("category", {})


class _ClientRef:
    __slots__ = ("id",)

    def __init__(self, client_id: str):
        self.id = client_id


WEBHOOK = ResourceType(
    "webhook",
    _attrs("last_attempted_at", "num_consecutive_times_failed", "paused", "secret", "uri")
    | {"triggers": lambda h, w: list(h.triggers)},
    {
        "campaign": Relationship("campaign", False, _campaign_of),
        "client": Relationship("client", False, lambda h, w: _ClientRef(h.client_id)),
    },
)

SCHEMA = Schema(
    [
        USER,
        CAMPAIGN,
        TIER,
        BENEFIT,
        GOAL,
        MEMBER,
        ADDRESS,
        PLEDGE_EVENT,
        POST,
        WEBHOOK,
        CLIENT,
        DELIVERABLE,
        MEDIA,
        CAMPAIGN_INSTALLATION,
        CATEGORY,
    ]
)


def self_link(type_name: str, resource_id: str, base_url: str = SITE) -> str:
    plural = {"member": "members", "post": "posts", "campaign": "campaigns", "user": "user"}
    return f"{base_url}/api/oauth2/v2/{plural.get(type_name, type_name + 's')}/{resource_id}"
