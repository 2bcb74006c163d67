"""Benchmark 2, proxy cost: a members read through the bridge against the same read
sent straight to the sandbox.

* bridge: ``GET /api/patreon/campaigns/1001/members?<query>`` with the server key
  (web -> ZeroMQ -> worker -> sandbox, creator token);
* direct: ``GET /api/oauth2/v2/campaigns/1001/members?<query>`` on the sandbox with a
  creator token of the benchmark's own (``bench.direct``).

Same query on both sides (100 members a page, with their entitled tiers), at
concurrency 1, 8 and 32, A and B interleaved round by round.
Goal (issue 17): the bridge delivers at least 85% of direct throughput at concurrency 8.
"""

from __future__ import annotations

import os

from bench import direct
from bench.client import HttpClient, UnexpectedStatus
from bench.machine import CpuAccount
from bench.measure import Series, interleave, run_batch
from bench.report import Line, Outcome, add_throughput_comparison
from bench.stacks import Run, supervised_pids

NUMBER = 2
KEY = "proxy"
TITLE = "Proxy cost"
GOAL = "through the bridge at least 85% of direct throughput at concurrency 8 (members, 100 a page)"

GOAL_SHARE = 0.85
JUDGED_CONCURRENCY = 8
LEVELS = (1, 8, 32)
PAGE_COUNT = 100


def _members(document: dict) -> int:
    data = document.get("data")
    return len(data) if isinstance(data, list) else -1


def run(ctx: Run) -> Outcome:
    outcome = Outcome(NUMBER, KEY, TITLE, GOAL)
    query = direct.member_query(PAGE_COUNT)
    bridge_path = f"{direct.BRIDGE_MEMBERS_PATH}?{query}"
    direct_path = f"{direct.MEMBERS_API_PATH}?{query}"

    probe = ctx.server_client()
    try:
        first = probe.get(bridge_path)
    finally:
        probe.close()
    if first.status == 404:
        outcome.add(
            Line(
                "members through the bridge",
                goal=f">= {GOAL_SHARE:.0%}",
                unavailable=f"GET {direct.BRIDGE_MEMBERS_PATH} answers 404 (route not in web yet)",
            )
        )
        return outcome
    if first.status != 200:
        raise UnexpectedStatus("GET", bridge_path, first.status, first.body)

    token = direct.creator_token(ctx.stack)
    check = ctx.sandbox_client(token)
    try:
        same = check.get(direct_path, expect=200)
    finally:
        check.close()
    bridge_members, direct_members = _members(first.json()), _members(same.json())
    if bridge_members != direct_members:
        outcome.notes.append(
            f"Warning: the bridge returned {bridge_members} members and the sandbox {direct_members} for the same query."
        )
    outcome.notes.append(
        f"Response sizes: bridge {len(first.body)} bytes, direct {len(same.body)} bytes "
        f"({direct_members} members a page)."
    )

    throttled_before = ctx.stack.sandbox("GET", "/_sandbox/state").json().get("throttled")
    rounds = ctx.scale(3, 1)
    duration_s = ctx.seconds(2.0, 0.5)
    bridge_clients = [ctx.server_client() for _ in range(max(LEVELS))]
    direct_clients = [ctx.sandbox_client(token) for _ in range(max(LEVELS))]

    def calls(clients: list[HttpClient], path: str, level: int):
        return [lambda c=c: c.get(path, expect=200) for c in clients[:level]]

    series: dict[tuple[str, int], Series] = {}
    pids = {**supervised_pids(ctx.stack), "benchmark client": os.getpid()}
    pids = {
        name: pid for name, pid in pids.items() if name in ("web", "worker", "sandbox", "benchmark client")
    }
    accounts: dict[tuple[str, int], CpuAccount] = {}
    try:
        for level in LEVELS:
            sides = {
                "direct": calls(direct_clients, direct_path, level),
                "bridge": calls(bridge_clients, bridge_path, level),
            }
            for side_calls in sides.values():
                run_batch(side_calls, duration_s=ctx.seconds(0.5, 0.2))  # warm-up

            def side(name: str, level=level, sides=sides):
                batches = series.setdefault((name, level), Series(f"{name} at {level}"))
                account = accounts.setdefault((name, level), CpuAccount(pids))
                return lambda: batches.add(
                    account.measure(lambda: run_batch(sides[name], duration_s=duration_s))
                )

            interleave(rounds, [side("direct"), side("bridge")])
    finally:
        for client in (*bridge_clients, *direct_clients):
            client.close()
    throttled_after = ctx.stack.sandbox("GET", "/_sandbox/state").json().get("throttled")

    for level in LEVELS:
        straight, bridged = series[("direct", level)], series[("bridge", level)]
        judged = level == JUDGED_CONCURRENCY
        add_throughput_comparison(
            outcome,
            level,
            bridged,
            straight,
            throughput_label="bridge vs direct, req/s",
            latency_label="p50/p99, bridge vs direct",
            goal_share=GOAL_SHARE,
            judged=judged,
            cpu=[
                (
                    "CPU ms per request, bridge",
                    accounts[("bridge", level)].per_call_ms(bridged.completed),
                ),
                (
                    "CPU ms per request, direct",
                    accounts[("direct", level)].per_call_ms(straight.completed),
                ),
            ]
            if judged
            else [],
        )
    outcome.notes.append(
        f"{rounds} interleaved rounds of {duration_s:g} s per side and level after a warm-up; "
        f"query: {query}. Sandbox 429s during the run: "
        f"{None if throttled_before is None else throttled_after - throttled_before} "
        "(rate limits raised on purpose, see Settings)."
    )
    return outcome
