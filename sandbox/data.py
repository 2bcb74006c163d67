"""The seeded world: one creator, one campaign, its tiers, benefits, goals, posts and
members, all generated deterministically from `random.Random(seed)`.

Ids are strings, as Patreon returns them: the creator is user "1", the campaign is
"1001", patron users are numbered from "2", member ids are UUIDs drawn from the seeded
generator. Dates are stored pre-formatted (UTC ISO 8601 with milliseconds and `+00:00`,
as Patreon sends them: `2023-03-08T08:24:05.000+00:00`) so serialising a page of 1,000
members formats nothing and sorting by a date is a string comparison.

All state lives here, behind `World.lock` (re-entrant): readers hold it while they
build a response, the control API holds it while it mutates. `version` grows on every
mutation so derived data (sort orders, counts) can be cached safely.
"""

from __future__ import annotations

import functools
import itertools
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

CREATOR_ID = "1"
CAMPAIGN_ID = "1001"
REFERENCE_TIME = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)  # "now" for the seeded data
SITE = "https://www.patreon.com"
CURRENCY = "USD"

FIRST_NAMES = (
    "Ada Alan Alice Amara Ana Ben Bea Carla Chen Dana Diego Eli Emma Farah Felix Grace "
    "Hana Hugo Ines Ivan Jade Jonas Kai Kira Lars Lea Leo Lina Malik Maya Nia Noah Olga "
    "Omar Pia Quinn Ravi Rosa Sami Sara Tariq Tess Uma Vera Wei Yara Yusuf Zoe"
).split()
LAST_NAMES = (
    "Abe Baker Costa Diaz Eriksen Fischer Garcia Haddad Ito Jensen Kowalski Lopez Meyer "
    "Nakamura Okafor Petrov Quist Rossi Schmidt Tanaka Umar Varga Weber Xu Yilmaz Zhang "
    "Novak Silva Moreau Dubois Khan Park Singh Murphy Kelly Berg Lind Horvat Ortiz Reyes"
).split()
CITIES = (
    ("Portland", "OR", "US", "97201"),
    ("Austin", "TX", "US", "73301"),
    ("Leeds", None, "GB", "LS1 4AP"),
    ("Lyon", None, "FR", "69002"),
    ("Toronto", "ON", "CA", "M5V 2T6"),
    ("Melbourne", "VIC", "AU", "3000"),
)
POST_WORDS = (
    "behind the scenes monthly update new chapter sketchbook livestream recap poll "
    "process notes studio tour patron q&a early access soundtrack draft wallpaper pack"
).split()
SOCIAL_APPS = (
    "deviantart discord facebook google instagram reddit spotify twitch twitter vimeo youtube"
).split()


def _between(rng: random.Random, low: int, high: int) -> int:
    """A faster `randint` (same determinism: one `random()` per draw)."""
    return low + int(rng.random() * (high - low + 1))


@functools.lru_cache(maxsize=4096)
def iso(moment: datetime) -> str:
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")


@functools.lru_cache(maxsize=256)
def first_of_month(moment: datetime, months_ahead: int = 0) -> datetime:
    month_index = moment.year * 12 + moment.month - 1 + months_ahead
    return moment.replace(
        year=month_index // 12, month=month_index % 12 + 1, day=1, hour=8, minute=0, second=0
    )


@dataclass(slots=True)
class User:
    id: str
    first_name: str
    last_name: str
    email: str
    vanity: str | None
    about: str | None
    created: str
    social_connections: dict
    is_email_verified: bool = True
    hide_pledges: bool = False
    can_see_nsfw: bool = False
    like_count: int = 0
    is_creator: bool = False

    @property
    def full_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    @property
    def url(self) -> str:
        if self.vanity:
            return f"{SITE}/{self.vanity}"
        return f"{SITE}/user?u={self.id}"

    @property
    def image_url(self) -> str:
        return f"https://c8.patreon.com/3/200/{self.id}"

    @property
    def thumb_url(self) -> str:
        return f"https://c8.patreon.com/2/200/{self.id}"


@dataclass(slots=True)
class Benefit:
    id: str
    title: str
    description: str
    rule_type: str
    created_at: str
    tier_ids: list[str] = field(default_factory=list)
    benefit_type: str = "custom"
    is_deleted: bool = False
    is_published: bool = True
    delivered_deliverables_count: int = 0
    not_delivered_deliverables_count: int = 0
    deliverables_due_today_count: int = 0
    next_deliverable_due_date: str | None = None


@dataclass(slots=True)
class Tier:
    id: str
    title: str
    amount_cents: int
    description: str
    created_at: str
    benefit_ids: list[str]
    requires_shipping: bool = False
    user_limit: int | None = None
    discord_role_ids: list[str] | None = None
    post_count: int = 0
    published: bool = True

    @property
    def url(self) -> str:
        return f"/checkout/sandbox-creator?rid={self.id}"


@dataclass(slots=True)
class Goal:
    id: str
    title: str
    description: str
    amount_cents: int
    created_at: str
    reached_at: str | None


@dataclass(slots=True)
class Campaign:
    id: str
    creator_id: str
    vanity: str
    creation_name: str
    summary: str
    one_liner: str
    created_at: str
    published_at: str
    tier_ids: list[str]
    benefit_ids: list[str]
    goal_ids: list[str]
    discord_server_id: str | None = "917700000000000001"

    @property
    def url(self) -> str:
        return f"{SITE}/{self.vanity}"


@dataclass(slots=True)
class Address:
    id: str
    user_id: str
    addressee: str
    line_1: str
    line_2: str
    city: str
    state: str | None
    postal_code: str
    country: str
    phone_number: str | None
    created_at: str
    confirmed: bool = True
    confirmed_at: str | None = None


@dataclass(slots=True)
class PledgeEvent:
    id: str
    type: str  # pledge_start | pledge_upgrade | pledge_downgrade | pledge_delete | subscription
    date: str
    amount_cents: int
    payment_status: str
    pledge_payment_status: str
    tier_id: str | None
    tier_title: str | None
    user_id: str
    campaign_id: str
    currency_code: str = CURRENCY


@dataclass(slots=True)
class Member:
    id: str
    seq: int  # creation order; the default sort and the tie-breaker of every sort
    user_id: str
    campaign_id: str
    patron_status: str | None
    last_charge_status: str | None
    tier_ids: list[str]
    currently_entitled_amount_cents: int
    will_pay_amount_cents: int
    campaign_lifetime_support_cents: int
    pledge_cadence: int | None
    next_charge_date: str | None
    last_charge_date: str | None
    pledge_relationship_start: str | None
    is_free_trial: bool = False
    is_gifted: bool = False
    note: str = ""
    address_id: str | None = None
    pledge_event_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Post:
    id: str
    seq: int
    campaign_id: str
    user_id: str
    title: str
    content: str
    published_at: str | None
    is_paid: bool
    is_public: bool
    tier_ids: list[str]
    embed_data: dict | None = None
    embed_url: str | None = None
    app_id: int | None = None
    app_status: str | None = None

    @property
    def url(self) -> str:
        slug = "-".join(self.title.lower().replace("&", "and").split())
        return f"{SITE}/posts/{slug}-{self.id}"


class MemberConflict(Exception):
    """The user is already a member, or is the creator."""


class World:
    """Every resource of the sandbox, and the only code that changes them."""

    def __init__(self, seed: int):
        self.lock = threading.RLock()
        self.version = 0
        self.rng = random.Random(seed)
        self.users: dict[str, User] = {}
        self.campaigns: dict[str, Campaign] = {}
        self.tiers: dict[str, Tier] = {}
        self.benefits: dict[str, Benefit] = {}
        self.goals: dict[str, Goal] = {}
        self.members: dict[str, Member] = {}  # insertion order == seq order
        self.member_by_user: dict[str, str] = {}
        self.addresses: dict[str, Address] = {}
        self.pledge_events: dict[str, PledgeEvent] = {}
        self.posts: dict[str, Post] = {}
        self._next_user = 2
        self._next_patron_number = 1
        self._next_member_seq = 1
        self._next_address = 7001
        self._next_event = 900001
        self._next_post = 2001
        self._stats_version = -1
        self._stats: tuple[int, int, dict[str, int]] = (0, 0, {})
        self.on_change: Callable[[], None] = lambda: None  # persistence hook

    # ---------------------------------------------------------------- generation

    @classmethod
    def generate(cls, seed: int, members: int) -> World:
        world = cls(seed)
        world._seed_creator()
        for _ in range(members):
            world._seed_member()
        for _ in range(20):
            world._seed_post()
        return world

    def _seed_creator(self) -> None:
        created = REFERENCE_TIME - timedelta(days=2200)
        creator = User(
            id=CREATOR_ID,
            first_name="Sam",
            last_name="Sandbox",
            email="creator@example.com",
            vanity="sandbox-creator",
            about="I make things for patrons. This campaign lives in the Patreon sandbox.",
            created=iso(created),
            social_connections={app: None for app in SOCIAL_APPS}
            | {"discord": {"url": None, "user_id": "917700000000000010"}},
            is_creator=True,
            like_count=412,
        )
        self.users[creator.id] = creator
        specs = (
            ("4001", "Name in the credits", "Your name in every video's credits.", "eom_monthly"),
            ("4002", "Discord role", "Patron-only Discord channels.", "one_time_immediate"),
            ("4003", "Early access", "Videos a week before everyone else.", "eom_monthly"),
            ("4004", "Monthly sketch", "A digital sketch every month.", "eom_monthly"),
            ("4005", "Sticker pack", "Physical stickers, shipped quarterly.", "eom_monthly"),
        )
        for benefit_id, title, description, rule in specs:
            self.benefits[benefit_id] = Benefit(
                id=benefit_id,
                title=title,
                description=description,
                rule_type=rule,
                created_at=iso(created + timedelta(days=30)),
            )
        tier_specs = (
            ("3001", "Supporter", 100, ["4001"], False, None),
            ("3002", "Insider", 500, ["4001", "4002"], False, None),
            ("3003", "Patron Plus", 1000, ["4001", "4002", "4003", "4004"], False, None),
            ("3004", "Producer", 2500, ["4001", "4002", "4003", "4004", "4005"], True, 500),
        )
        for index, (tier_id, title, cents, benefit_ids, shipping, limit) in enumerate(tier_specs):
            self.tiers[tier_id] = Tier(
                id=tier_id,
                title=title,
                amount_cents=cents,
                description=f"<p>{title}: ${cents // 100} a month.</p>",
                created_at=iso(created + timedelta(days=31 + index)),
                benefit_ids=list(benefit_ids),
                requires_shipping=shipping,
                user_limit=limit,
                discord_role_ids=[f"9177000000000001{index:02d}"],
            )
            for benefit_id in benefit_ids:
                self.benefits[benefit_id].tier_ids.append(tier_id)
        self.goals["5001"] = Goal(
            id="5001",
            title="Monthly video",
            description="At $500 a month I release one video every month.",
            amount_cents=50000,
            created_at=iso(created + timedelta(days=40)),
            reached_at=iso(created + timedelta(days=400)),
        )
        self.goals["5002"] = Goal(
            id="5002",
            title="Weekly videos",
            description="At $2,000 a month I go weekly.",
            amount_cents=200000,
            created_at=iso(created + timedelta(days=40)),
            reached_at=None,
        )
        self.campaigns[CAMPAIGN_ID] = Campaign(
            id=CAMPAIGN_ID,
            creator_id=CREATOR_ID,
            vanity="sandbox-creator",
            creation_name="videos about making things",
            summary="<p>Weekly videos about building small, useful things.</p>",
            one_liner="Making things, on camera.",
            created_at=iso(created + timedelta(days=29)),
            published_at=iso(created + timedelta(days=35)),
            tier_ids=list(self.tiers),
            benefit_ids=list(self.benefits),
            goal_ids=list(self.goals),
        )

    def _seed_member(self) -> None:
        rng = self.rng
        roll = rng.random()
        status = "active_patron" if roll < 0.8 else "declined_patron" if roll < 0.92 else None
        status = status or "former_patron"
        pick = rng.random()
        tier_id = "3001" if pick < 0.5 else "3002" if pick < 0.8 else "3003" if pick < 0.95 else "3004"
        tier = self.tiers[tier_id]
        start = REFERENCE_TIME - timedelta(days=_between(rng, 3, 1500), seconds=_between(rng, 0, 86399))
        cadence = 12 if rng.random() < 0.1 else 1
        user = self._new_user(rng, created=start - timedelta(days=_between(rng, 0, 900)))
        member = self._new_member(user, tier, status, start, cadence, now=REFERENCE_TIME)
        member.is_free_trial = status == "active_patron" and rng.random() < 0.02
        member.is_gifted = rng.random() < 0.02

    def _new_user(
        self,
        rng: random.Random,
        created: datetime,
        email: str | None = None,
        full_name: str | None = None,
    ) -> User:
        number = self._next_patron_number
        self._next_patron_number += 1
        user_id = str(self._next_user)
        self._next_user += 1
        first = FIRST_NAMES[int(rng.random() * len(FIRST_NAMES))]
        last = LAST_NAMES[int(rng.random() * len(LAST_NAMES))]
        if full_name:
            first, _, last = full_name.strip().partition(" ")
        social = dict.fromkeys(SOCIAL_APPS)
        if rng.random() < 0.4:
            social["discord"] = {"url": None, "user_id": str(_between(rng, 10**17, 10**18 - 1))}
        if rng.random() < 0.15:
            social["twitch"] = {"url": f"https://twitch.tv/{first.lower()}{number}", "user_id": None}
        if rng.random() < 0.1:
            social["youtube"] = {"url": None, "user_id": f"UC{rng.getrandbits(64):016x}"}
        user = User(
            id=user_id,
            first_name=first,
            last_name=last,
            email=email or f"patron{number}@example.com",
            vanity=f"{first.lower()}{number}" if rng.random() < 0.3 else None,
            about=None,
            created=iso(created),
            social_connections=social,
            is_email_verified=rng.random() < 0.95,
            hide_pledges=rng.random() < 0.1,
            like_count=_between(rng, 0, 300),
        )
        self.users[user_id] = user
        return user

    def _new_member(
        self,
        user: User,
        tier: Tier,
        status: str,
        start: datetime,
        cadence: int,
        now: datetime,
    ) -> Member:
        rng = self.rng
        months = max(1, (now - start).days // 30)
        cents = tier.amount_cents
        last_charge = first_of_month(now)
        if last_charge > now:
            last_charge = first_of_month(now, -1)
        if months == 1 or last_charge < start:
            last_charge = start
        entitled, will_pay, tier_ids = cents, cents, [tier.id]
        next_charge: datetime | None = first_of_month(now, cadence)
        charge_status = "Paid"
        lifetime = months * cents
        if status == "declined_patron":
            charge_status = "Declined"
            lifetime -= cents
        elif status == "former_patron":
            months = _between(rng, 1, months)
            lifetime = months * cents
            last_charge = min(start + timedelta(days=30 * (months - 1)), now)
            entitled, will_pay, tier_ids, next_charge = 0, 0, [], None
        member = Member(
            id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            seq=self._next_member_seq,
            user_id=user.id,
            campaign_id=CAMPAIGN_ID,
            patron_status=status,
            last_charge_status=charge_status,
            tier_ids=tier_ids,
            currently_entitled_amount_cents=entitled,
            will_pay_amount_cents=will_pay,
            campaign_lifetime_support_cents=max(lifetime, 0),
            pledge_cadence=cadence,
            next_charge_date=iso(next_charge) if next_charge else None,
            last_charge_date=iso(last_charge),
            pledge_relationship_start=iso(start),
        )
        self._next_member_seq += 1
        if tier.requires_shipping:
            member.address_id = self._new_address(user, start).id
        self._record_event(member, "pledge_start", start, tier, "Paid")
        if status == "former_patron":
            self._record_event(member, "pledge_delete", last_charge, tier, "Paid")
        else:
            self._record_event(member, "subscription", last_charge, tier, charge_status)
        self.members[member.id] = member
        self.member_by_user[user.id] = member.id
        return member

    def _new_address(self, user: User, created: datetime) -> Address:
        city, state, country, postal = self.rng.choice(CITIES)
        address = Address(
            id=str(self._next_address),
            user_id=user.id,
            addressee=user.full_name,
            line_1=f"{self.rng.randint(1, 999)} Main Street",
            line_2="",
            city=city,
            state=state,
            postal_code=postal,
            country=country,
            phone_number=None,
            created_at=iso(created),
        )
        self._next_address += 1
        self.addresses[address.id] = address
        return address

    def _record_event(
        self, member: Member, kind: str, when: datetime, tier: Tier | None, payment: str
    ) -> PledgeEvent:
        event = PledgeEvent(
            id=f"{kind}:{self._next_event}",
            type=kind,
            date=iso(when),
            amount_cents=tier.amount_cents if tier else 0,
            payment_status=payment,
            pledge_payment_status="valid" if payment == "Paid" else "declined",
            tier_id=tier.id if tier else None,
            tier_title=tier.title if tier else None,
            user_id=member.user_id,
            campaign_id=member.campaign_id,
        )
        self._next_event += 1
        self.pledge_events[event.id] = event
        member.pledge_event_ids.append(event.id)
        return event

    def _seed_post(self) -> None:
        rng = self.rng
        index = self._next_post - 2000
        published = REFERENCE_TIME - timedelta(days=7 * (21 - index), hours=rng.randint(0, 12))
        self._new_post(
            title=" ".join(rng.sample(POST_WORDS, 3)).capitalize() + f" #{index}",
            content=f"<p>Post number {index}. Thanks for supporting the campaign!</p>",
            is_paid=rng.random() < 0.2,
            is_public=rng.random() < 0.4,
            published_at=published,
            embed=rng.random() < 0.3,
        )

    def _new_post(
        self,
        title: str,
        content: str,
        is_paid: bool,
        is_public: bool,
        published_at: datetime,
        embed: bool = False,
    ) -> Post:
        post_id = str(self._next_post)
        self._next_post += 1
        tier_ids = [] if is_public else [tid for tid in self.tiers if tid != "3001"]
        post = Post(
            id=post_id,
            seq=len(self.posts) + 1,
            campaign_id=CAMPAIGN_ID,
            user_id=CREATOR_ID,
            title=title,
            content=content,
            published_at=iso(published_at),
            is_paid=is_paid,
            is_public=is_public,
            tier_ids=tier_ids,
        )
        if embed:
            video = f"https://www.youtube.com/watch?v=sandbox{post_id}"
            post.embed_url = video
            post.embed_data = {
                "description": f"Video for post {post_id}",
                "html": None,
                "provider": "YouTube",
                "provider_url": "https://www.youtube.com/",
                "subject": title,
                "url": video,
            }
        self.posts[post.id] = post
        for tier_id in tier_ids:
            self.tiers[tier_id].post_count += 1
        return post

    # ---------------------------------------------------------------- reads

    def campaign_of(self, user_id: str) -> Campaign | None:
        for campaign in self.campaigns.values():
            if campaign.creator_id == user_id:
                return campaign
        return None

    def members_of(self, campaign_id: str) -> list[Member]:
        return [m for m in self.members.values() if m.campaign_id == campaign_id]

    def posts_of(self, campaign_id: str) -> list[Post]:
        return [p for p in self.posts.values() if p.campaign_id == campaign_id]

    def memberships_of(self, user_id: str) -> list[Member]:
        member_id = self.member_by_user.get(user_id)
        return [self.members[member_id]] if member_id else []

    def _refresh_stats(self) -> tuple[int, int, dict[str, int]]:
        """Patron count, monthly cents and per-tier counts, cached per version."""
        if self._stats_version != self.version:
            patrons = cents = 0
            per_tier = dict.fromkeys(self.tiers, 0)
            for member in self.members.values():
                if member.patron_status == "active_patron":
                    patrons += 1
                    cents += member.currently_entitled_amount_cents
                    for tier_id in member.tier_ids:
                        per_tier[tier_id] = per_tier.get(tier_id, 0) + 1
            self._stats = (patrons, cents, per_tier)
            self._stats_version = self.version
        return self._stats

    def patron_count(self) -> int:
        return self._refresh_stats()[0]

    def monthly_cents(self) -> int:
        return self._refresh_stats()[1]

    def tier_patron_count(self, tier_id: str) -> int:
        return self._refresh_stats()[2].get(tier_id, 0)

    def default_patron_user_ids(self, count: int) -> list[str]:
        """The first few patrons with a membership: offered on the consent page."""
        return [m.user_id for m in itertools.islice(self.members.values(), count)]

    # ---------------------------------------------------------------- changes

    def _changed(self) -> None:
        self.version += 1
        self.on_change()

    def add_member(
        self,
        now: datetime,
        tier_id: str | None = None,
        email: str | None = None,
        full_name: str | None = None,
        user_id: str | None = None,
    ) -> Member:
        """A new active patron (a new user unless `user_id` names an existing one)."""
        with self.lock:
            tier = self.tiers[tier_id] if tier_id else self.lowest_tier()
            if user_id is not None:
                user = self.users[user_id]
                if user.id == CREATOR_ID or user.id in self.member_by_user:
                    raise MemberConflict(user.id)
            else:
                user = self._new_user(self.rng, created=now, email=email, full_name=full_name)
            member = self._new_member(user, tier, "active_patron", now, 1, now=now)
            self._changed()
            return member

    def lowest_tier(self) -> Tier:
        return min(self.tiers.values(), key=lambda tier: tier.amount_cents)

    def next_tier_up(self, member: Member) -> Tier | None:
        current = max((self.tiers[t].amount_cents for t in member.tier_ids), default=-1)
        higher = [t for t in self.tiers.values() if t.amount_cents > current]
        return min(higher, key=lambda tier: tier.amount_cents) if higher else None

    def change_tier(self, member: Member, tier: Tier, now: datetime) -> Member:
        with self.lock:
            old = max((self.tiers[t].amount_cents for t in member.tier_ids), default=0)
            kind = "pledge_upgrade" if tier.amount_cents >= old else "pledge_downgrade"
            member.tier_ids = [tier.id]
            member.patron_status = "active_patron"
            member.last_charge_status = "Paid"
            member.last_charge_date = iso(now)
            member.next_charge_date = iso(first_of_month(now, member.pledge_cadence or 1))
            member.currently_entitled_amount_cents = tier.amount_cents
            member.will_pay_amount_cents = tier.amount_cents
            member.campaign_lifetime_support_cents += tier.amount_cents
            if member.pledge_relationship_start is None:
                member.pledge_relationship_start = iso(now)
            if tier.requires_shipping and member.address_id is None:
                member.address_id = self._new_address(self.users[member.user_id], now).id
            self._record_event(member, kind, now, tier, "Paid")
            self._changed()
            return member

    def decline(self, member: Member, now: datetime) -> Member:
        """A failed charge. Entitlement stays until the period ends, as on Patreon."""
        with self.lock:
            member.patron_status = "declined_patron"
            member.last_charge_status = "Declined"
            member.last_charge_date = iso(now)
            tier = self.tiers[member.tier_ids[0]] if member.tier_ids else None
            self._record_event(member, "subscription", now, tier, "Declined")
            self._changed()
            return member

    def remove_member(self, member: Member) -> None:
        with self.lock:
            self.members.pop(member.id, None)
            self.member_by_user.pop(member.user_id, None)
            self._changed()

    def publish_post(
        self, now: datetime, title: str | None, content: str | None, is_public: bool, is_paid: bool
    ) -> Post:
        with self.lock:
            number = self._next_post - 2000
            post = self._new_post(
                title=title or f"Sandbox post #{number}",
                content=content or f"<p>Post number {number}, published from the sandbox.</p>",
                is_paid=is_paid,
                is_public=is_public,
                published_at=now,
            )
            self._changed()
            return post

    def update_post(self, post: Post, title: str | None, content: str | None) -> Post:
        with self.lock:
            if title is not None:
                post.title = title
            if content is not None:
                post.content = content
            self._changed()
            return post

    def remove_post(self, post: Post) -> None:
        with self.lock:
            self.posts.pop(post.id, None)
            self._changed()
