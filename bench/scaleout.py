"""Benchmark 11, webhook intake beyond one host: two stacks on one PostgreSQL vs one,
and SQLite vs PostgreSQL on one host.

Three real stacks (supervisord, the real supervisord.conf): ``sqlite`` on its own
SQLite file, and ``pg-a`` + ``pg-b`` on one PostgreSQL database of a throw-away
cluster (harness/postgres.py; started here with ``fsync=on``, PostgreSQL's default, so
each commit is flushed as in production). Three sides, interleaved round by round so
the machine's load hits each alike:

* ``one PG stack``: 8 clients post signed, distinct deliveries to pg-a;
* ``two PG stacks``: 8 clients to pg-a and 8 to pg-b at once (each stack as loaded as
  the one stack was: what a second host adds);
* ``SQLite stack``: 8 clients to the SQLite stack.

Printed ratios: two ÷ one (goal >= 1.8: a second host nearly doubles intake) and
SQLite ÷ PostgreSQL (one stack each). All stacks and PostgreSQL run on this one
machine, so "two hosts" here share its cores: the figure shows what the shared
store allows, not what two real hosts would; the load average is printed with it.

Run alone: ``python -m bench --only scaleout``. Needs Debian's ``postgresql``
package (``initdb``/``pg_ctl``); without it the benchmark says so and measures nothing.
"""

from __future__ import annotations

import contextlib
import os
import secrets

import psycopg

from bench.client import HttpClient, UnexpectedStatus
from bench.deliveries import RECEIVER_PATH, Deliveries
from bench.machine import CpuMeter
from bench.measure import Series, interleave, ratio, run_batch
from bench.report import Line, Outcome, fmt_ms, fmt_ratio
from harness.stack import Stack
from store.encryption import new_key

NUMBER = 11
KEY = "scaleout"
TITLE = "Webhook intake: two stacks on one PostgreSQL vs one; SQLite vs PostgreSQL"
GOAL = "two stacks on one PostgreSQL take >= 1.8x the deliveries/s of one (8 clients per stack)"
GOAL_RATIO = 1.8
CLIENTS_PER_STACK = 8


def _post(client: HttpClient, deliveries: Deliveries) -> None:
    body, headers = deliveries.next()
    reply = client.post(RECEIVER_PATH, body, headers=headers, expect=200)
    if b'"duplicate":false' not in reply.body.replace(b" ", b""):
        raise UnexpectedStatus("POST", RECEIVER_PATH, reply.status, reply.body)


def _env(secret: str, database_url: str | None) -> dict[str, str]:
    return {
        "BRIDGE_API_KEY": secrets.token_hex(20),
        "PATREON_WEBHOOK_SECRET": secret,
        "BRIDGE_ENCRYPTION_KEY": _KEY,
        "SANDBOX_MEMBERS": "10",  # the sandbox is not used here: a quick start
        **({"DATABASE_URL": database_url} if database_url else {}),
    }


_KEY = new_key()


def run(quick: bool) -> Outcome:
    from harness.postgres import MISSING, Cluster, binaries

    outcome = Outcome(NUMBER, KEY, TITLE, GOAL)
    bin_dir = binaries()
    if bin_dir is None:
        outcome.add(Line("two ÷ one", goal=f">= {GOAL_RATIO}", unavailable=MISSING))
        return outcome
    load_before = os.getloadavg()
    secret = secrets.token_hex(16)
    cluster = Cluster(bin_dir).init()
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(cluster.destroy)
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET fsync = on")  # the test cluster runs without it
            conn.execute("SELECT pg_reload_conf()")
        url = cluster.create_database("bench_scaleout")
        pg_a = cleanup.enter_context(Stack(_env(secret, url), name="bench-pg-a"))
        pg_b = cleanup.enter_context(Stack(_env(secret, url), name="bench-pg-b", sandbox_of=pg_a))
        lite = cleanup.enter_context(Stack(_env(secret, None), name="bench-lite"))
        deliveries = Deliveries(secret, f"scale-{secrets.token_hex(4)}")
        clients = {
            name: [HttpClient(stack.base_url) for _ in range(CLIENTS_PER_STACK)]
            for name, stack in (("pg-a", pg_a), ("pg-b", pg_b), ("sqlite", lite))
        }
        for group in clients.values():
            cleanup.callback(lambda group=group: [c.close() for c in group])

        def calls(*names: str) -> list:
            return [lambda c=c: _post(c, deliveries) for name in names for c in clients[name]]

        sides = {
            "one PG stack": calls("pg-a"),
            "two PG stacks": calls("pg-a", "pg-b"),
            "SQLite stack": calls("sqlite"),
        }
        rounds = 1 if quick else 4
        duration_s = 0.5 if quick else 2.0
        for side_calls in sides.values():
            run_batch(side_calls, duration_s=0.2 if quick else 0.5)  # warm-up
        series = {name: Series(name) for name in sides}
        # The whole machine's busy cores during each side (PostgreSQL's processes are
        # not our children): whether a side was bound by the CPU or by the store.
        busy: dict[str, list[float]] = {name: [] for name in sides}

        def side(name: str):
            def one_batch() -> None:
                meter = CpuMeter().start()
                series[name].add(run_batch(sides[name], duration_s=duration_s))
                use = meter.stop()
                busy[name].append(use.ours_cores + use.foreign_cores)

            return one_batch

        interleave(rounds, [side(name) for name in sides])
    load_after = os.getloadavg()

    one, two, lite_s = series["one PG stack"], series["two PG stacks"], series["SQLite stack"]
    errors = one.errors + two.errors + lite_s.errors
    scale = ratio(two.throughput, one.throughput)
    outcome.add(
        Line(
            "deliveries/s: two PG stacks vs one (two ÷ one)",
            f"{two.throughput:.0f} vs {one.throughput:.0f} ({fmt_ratio(scale)})"
            + (f", {errors} errors" if errors else ""),
            goal=f">= {GOAL_RATIO}",
            met=scale is not None and scale >= GOAL_RATIO and errors == 0,
        ),
        Line(
            "deliveries/s: SQLite stack vs PG stack (SQLite ÷ PostgreSQL)",
            f"{lite_s.throughput:.0f} vs {one.throughput:.0f} ({fmt_ratio(ratio(lite_s.throughput, one.throughput))})",
        ),
        Line(
            "latency p50/p99: one PG stack, two PG stacks, SQLite",
            f"{fmt_ms(one.summary_ms())}; {fmt_ms(two.summary_ms())}; {fmt_ms(lite_s.summary_ms())}",
        ),
        Line(
            "machine cores busy (all processes): one PG stack, two PG stacks, SQLite",
            "; ".join(f"{sum(v) / len(v):.2f}" for v in busy.values()) + f" of {os.cpu_count()}",
        ),
        Line(
            "load average (1 min) before / after",
            f"{load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} cores",
        ),
    )
    for s in (one, two, lite_s):
        for message in s.error_messages:
            outcome.notes.append(f"Error ({s.name}): {message}")
    outcome.notes.append(
        f"{rounds} interleaved rounds of {duration_s:g} s per side after a warm-up, "
        f"{CLIENTS_PER_STACK} keep-alive clients per stack (threads of the benchmark process). "
        "Every delivery is distinct and committed before its 200. PostgreSQL (fsync=on, "
        "synchronous_commit=on: each commit flushed) and all three stacks share this machine's "
        "cores, so two stacks compete for the CPU one stack had alone; SQLite runs WAL with "
        "synchronous=NORMAL (a commit survives a crash of the process, not of the machine)."
    )
    return outcome
