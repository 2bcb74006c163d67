"""Benchmark 3, webhook intake: signed, durably stored deliveries per second.

Side B posts signed deliveries to ``POST /api/patreon/webhooks/patreon`` (verified,
written to SQLite and committed before the 200). Side A, the baseline, posts the
very same kind of request (same body size, same headers, built and signed the same
way by the same client) to a POST route that does no work. web has no such route,
so the baseline is a path web does not know: waitress reads the request, Falcon
routes it and answers its JSON 404 (``{"success": false, ..., "code": "NOT_FOUND"}``).
That is the server's floor for a POST, the cost every route pays before its own work.

Measured at concurrency 1 and 8 (a burst of deliveries), A and B interleaved.
Goal: B at least 70% of A's rate at concurrency 8.
"""

from __future__ import annotations

import os
import secrets

from bench.client import HttpClient, UnexpectedStatus
from bench.deliveries import RECEIVER_PATH, Deliveries
from bench.machine import CpuAccount
from bench.measure import Series, interleave, run_batch
from bench.report import Line, Outcome, add_throughput_comparison
from bench.stacks import Run, supervised_pids

NUMBER = 3
KEY = "webhooks"
TITLE = "Webhook intake"
GOAL = "signed, stored deliveries/s at least 70% of a trivial POST's rate on the same server (concurrency 8)"

GOAL_RATIO = 0.70
JUDGED_CONCURRENCY = 8
BASELINE_PATH = "/api/patreon/_bench/no-such-route"


def _post(client: HttpClient, deliveries: Deliveries, path: str, expect: int) -> None:
    body, headers = deliveries.next()
    reply = client.post(path, body, headers=headers, expect=expect)
    if expect == 200 and b'"duplicate":false' not in reply.body.replace(b" ", b""):
        raise UnexpectedStatus("POST", path, reply.status, reply.body)


def run(ctx: Run) -> Outcome:
    outcome = Outcome(NUMBER, KEY, TITLE, GOAL)
    probe = ctx.client()
    try:
        deliveries = Deliveries(ctx.webhook_secret, f"bench-{secrets.token_hex(4)}")
        body, headers = deliveries.next()
        answer = probe.post(RECEIVER_PATH, body, headers=headers)
        if answer.status == 404:
            outcome.add(
                Line("deliveries/s", goal=">= 70%", unavailable=f"no route {RECEIVER_PATH} in web yet")
            )
            return outcome
        if answer.status != 200:
            raise UnexpectedStatus("POST", RECEIVER_PATH, answer.status, answer.body)
    finally:
        probe.close()

    rounds = ctx.scale(4, 1)
    duration_s = ctx.seconds(2.0, 0.5)
    levels = (1, JUDGED_CONCURRENCY)
    clients = [ctx.client() for _ in range(max(levels))]
    pids = {**supervised_pids(ctx.stack), "benchmark client": os.getpid()}
    pids = {name: pid for name, pid in pids.items() if name in ("web", "worker", "benchmark client")}
    accounts: dict[tuple[str, int], CpuAccount] = {}
    try:
        series: dict[tuple[str, int], Series] = {}
        for level in levels:
            sides = {
                "baseline": [lambda c=c: _post(c, deliveries, BASELINE_PATH, 404) for c in clients[:level]],
                "webhook": [lambda c=c: _post(c, deliveries, RECEIVER_PATH, 200) for c in clients[:level]],
            }
            for calls in sides.values():
                run_batch(calls, duration_s=ctx.seconds(0.5, 0.2))  # warm-up

            def side(name: str, level=level, sides=sides):
                batches = series.setdefault((name, level), Series(f"{name} at {level}"))
                account = accounts.setdefault((name, level), CpuAccount(pids))
                return lambda: batches.add(
                    account.measure(lambda: run_batch(sides[name], duration_s=duration_s))
                )

            interleave(rounds, [side("baseline"), side("webhook")])
    finally:
        for client in clients:
            client.close()

    for level in levels:
        base, hook = series[("baseline", level)], series[("webhook", level)]
        judged = level == JUDGED_CONCURRENCY
        add_throughput_comparison(
            outcome,
            level,
            hook,
            base,
            throughput_label="webhook vs baseline, per s",
            latency_label="latency p50/p99, webhook vs baseline",
            goal_share=GOAL_RATIO,
            judged=judged,
            cpu=[
                ("CPU ms per delivery", accounts[("webhook", level)].per_call_ms(hook.completed)),
                ("CPU ms per baseline POST", accounts[("baseline", level)].per_call_ms(base.completed)),
            ]
            if judged
            else [],
        )
    outcome.notes.append(
        f"Baseline: POST {BASELINE_PATH} (no such route: waitress + Falcon routing + the JSON "
        "404 body), with the same signed ~3 KiB bodies and headers as the deliveries. "
        f"{rounds} interleaved rounds of {duration_s:g} s per side and concurrency level, after a "
        "warm-up. Each delivery is distinct (no dedupe hits): every 200 is a new row committed "
        "to SQLite (WAL) before the answer."
    )
    return outcome
