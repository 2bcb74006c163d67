"""Benchmark 4, paging: every one of 10,000 members through ``all=true`` against a
straight sequential page walk of the sandbox, 1,000 members a page.

* bridge: one ``GET /api/patreon/campaigns/1001/members?all=true&page[count]=1000``
  (the worker follows every cursor and returns one merged document);
* direct: the same 10 pages fetched one after another from the sandbox, following
  ``meta.pagination.cursors.next``.

Both sides parse what they receive (a consumer does) and use the same fields. This runs
on the paging stack, under Patreon's documented rate limits, so "zero 429s" tests
the bridge's pacing. The two sides share one per-minute window (Patreon keys it by
client and user), so the rounds are few: (warm-up + rounds) x 20 pages stays under 100.

Goal: the bridge's walk within 1.2x of the direct walk (p50 of the rounds), zero 429s.
"""

from __future__ import annotations

import time

from bench import direct
from bench.client import UnexpectedStatus
from bench.measure import Summary, ratio
from bench.report import Line, Outcome, fmt_ms, fmt_ratio
from bench.stacks import MEMBERS, Run

NUMBER = 4
KEY = "paging"
TITLE = "Paging (all=true)"
GOAL = "all=true over 10,000 members within 1.2x of a sequential page walk, zero 429s"

GOAL_RATIO = 1.2
PAGE_COUNT = 1000
WALK_TIMEOUT_S = 120.0


def run(ctx: Run) -> Outcome:
    outcome = Outcome(NUMBER, KEY, TITLE, GOAL)
    bridge_path = f"{direct.BRIDGE_MEMBERS_PATH}?{direct.member_query(PAGE_COUNT, all='true')}"
    bridge = ctx.server_client()
    bridge.timeout_s = WALK_TIMEOUT_S
    state = lambda: ctx.stack.sandbox("GET", "/_sandbox/state").json()  # noqa: E731
    throttled_before = state()["throttled"]

    probe = bridge.get(f"{direct.BRIDGE_MEMBERS_PATH}?{direct.member_query(1)}")
    if probe.status == 404:
        bridge.close()
        outcome.add(
            Line(
                "all=true vs page walk",
                goal=f"<= {GOAL_RATIO}x, zero 429s",
                unavailable=f"GET {direct.BRIDGE_MEMBERS_PATH} answers 404 (route not in web yet)",
            )
        )
        return outcome

    token = direct.creator_token(ctx.stack)
    sandbox = ctx.sandbox_client(token)
    sandbox.timeout_s = WALK_TIMEOUT_S
    warmup, rounds = 1, ctx.scale(3, 1)
    bridge_s: list[float] = []
    direct_s: list[float] = []
    bridge_429 = 0
    counts: set[tuple[str, int]] = set()
    try:
        for n in range(warmup + rounds):
            t0 = time.perf_counter()
            seen = direct.walk(sandbox, PAGE_COUNT)
            t1 = time.perf_counter()
            counts.add(("direct", seen))
            reply = bridge.get(bridge_path)
            if reply.status == 429:
                bridge_429 += 1
                continue
            if reply.status != 200:
                raise UnexpectedStatus("GET", bridge_path, reply.status, reply.body)
            document = reply.json()
            t2 = time.perf_counter()
            counts.add(("bridge", len(document.get("data") or [])))
            if n >= warmup:
                direct_s.append(t1 - t0)
                bridge_s.append(t2 - t1)
    finally:
        bridge.close()
        sandbox.close()
    throttled = state()["throttled"] - throttled_before

    wrong = sorted(f"{side} saw {count}" for side, count in counts if count != MEMBERS)
    no_429 = throttled == 0 and bridge_429 == 0
    if not bridge_s:
        outcome.add(
            Line("all=true", goal=f"<= {GOAL_RATIO}x", unavailable=f"every all=true got 429 ({bridge_429})")
        )
        return outcome
    b, d = Summary.of(bridge_s).scaled(1000), Summary.of(direct_s).scaled(1000)
    walk_ratio = ratio(b.p50, d.p50)
    outcome.add(
        Line(
            f"all=true vs page walk ({MEMBERS} members, {PAGE_COUNT}/page), p50/p99",
            f"{fmt_ms(b)} vs {fmt_ms(d)}",
        ),
        Line(
            "time ratio (p50)",
            fmt_ratio(walk_ratio),
            goal=f"<= {GOAL_RATIO}x",
            met=walk_ratio is not None and walk_ratio <= GOAL_RATIO and not wrong,
        ),
        Line(
            "429s: sandbox throttled / bridge answered",
            f"{throttled} / {bridge_429}",
            goal="0",
            met=no_429,
        ),
    )
    if wrong:
        outcome.notes.append(f"Member counts off: {', '.join(wrong)} (expected {MEMBERS}).")
    outcome.notes.append(
        f"{warmup} warm-up + {rounds} rounds, each a direct walk then an all=true read; times "
        "include reading and parsing the JSON. Sandbox: documented limits (100 per 2 s per client, "
        "100 per minute per client and user); bridge: default pacing (95 per 2 s, 90 per minute)."
    )
    return outcome
