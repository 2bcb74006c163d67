"""``python -m bench``: start the real stacks, run every benchmark, print the table.

    python -m bench                 # the full run (about 5 minutes), writes bench/RESULTS.md
    python -m bench --quick         # a smoke run: few rounds, prints only
    python -m bench --only proxy    # one benchmark (repeatable), prints only
    python -m bench --output FILE   # also write the report of a quick/partial run

Order on the main stack: memory idle, 1 ipc, 2 proxy, 3 webhooks, 6 live, memory after
load, then 5 recovery last (it restarts the worker, which would reset its memory).
Benchmark 4 (paging) runs on a second stack with Patreon's documented rate limits;
7 (member sync) and then 8 (access checks) on a third, also with the documented limits.
Benchmark 9 (fanout: 10,000 live subscribers) runs on a fourth stack of its own.
Benchmark 11 (scaleout) starts a throw-away PostgreSQL cluster and three stacks of its own.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from pathlib import Path
from types import ModuleType

from bench import (
    access,
    fanout,
    ipc,
    live,
    machine,
    member_sync,
    memory,
    paging,
    proxy,
    ratelimit,
    recovery,
    report,
    scaleout,
    stacks,
    webhooks,
)
from bench.client import HttpClient
from bench.report import Line, Outcome
from harness.stack import Stack, wait_for

MAIN_STACK_BENCHMARKS = (ipc, proxy, webhooks, live)  # in this order, before memory "after"
ENTITLEMENT_BENCHMARKS = (member_sync, access)  # in this order: access checks need the synced table
ALL = (ipc, proxy, webhooks, paging, recovery, live, memory, member_sync, access, fanout, ratelimit, scaleout)
NAMES = {module.KEY: module for module in ALL}
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "RESULTS.md"
SANDBOX_READY_TIMEOUT_S = 120.0
FOREIGN_LOAD_WARNING_CORES = 0.3  # other processes' average use worth a warning (of 2 cores)

log = logging.getLogger("bench")


def sandbox_problem(stack: Stack) -> str | None:
    """Wait for the sandbox to serve; the reason it does not, or None."""

    def ready() -> bool:
        client = HttpClient(stack.sandbox_url)
        try:
            return client.get("/_sandbox/state").status == 200
        finally:
            client.close()

    try:
        wait_for(ready, SANDBOX_READY_TIMEOUT_S, interval_s=0.2, what="the sandbox")
    except TimeoutError:
        return f"the sandbox did not serve within {SANDBOX_READY_TIMEOUT_S:g} s (see {stack.dir}/var/log)"
    return None


def guarded(module: ModuleType, fn, *args) -> Outcome:
    """Run one benchmark; a benchmark that fails reports the failure, never a number."""
    meter = machine.CpuMeter().start()
    started = time.monotonic()
    log.info("%d. %s ...", module.NUMBER, module.TITLE)
    try:
        outcome = fn(*args)
    except Exception as ex:
        traceback.print_exc()
        outcome = Outcome(module.NUMBER, module.KEY, module.TITLE, module.GOAL)
        outcome.add(
            Line("run", goal="(see goal)", unavailable=f"benchmark failed: {type(ex).__name__}: {ex}")
        )
    outcome.cpu = meter.stop()
    log.info("%d. %s: %s (%.0f s)", module.NUMBER, module.TITLE, outcome.verdict, time.monotonic() - started)
    return outcome


def unavailable(module: ModuleType, reason: str) -> Outcome:
    outcome = Outcome(module.NUMBER, module.KEY, module.TITLE, module.GOAL)
    outcome.add(Line("run", goal="(see goal)", unavailable=reason))
    return outcome


def run_main_stack(selected: list[ModuleType], quick: bool, outcomes: dict[str, Outcome]) -> list:
    """Benchmarks 1, 2, 3, 6, 5 and memory on the main stack; returns memory snapshots."""
    api_key, webhook_secret = stacks.new_secrets()
    log.info("starting the main stack ...")
    stack = stacks.start(stacks.main_env(api_key, webhook_secret), name="bench-main")
    snapshots = []
    try:
        ctx = stacks.Run(stack, quick, api_key, webhook_secret)
        problem = sandbox_problem(stack)
        client = ctx.client()
        client.get("/api/patreon/status", expect=200)
        client.get("/api/patreon/health", expect=200)
        client.close()
        if memory in selected:
            snapshots.append(memory.snapshot(stack, "idle, after start"))
        for module in MAIN_STACK_BENCHMARKS:
            if module not in selected:
                continue
            if problem and module in (proxy,):
                outcomes[module.KEY] = unavailable(module, problem)
                continue
            outcomes[module.KEY] = guarded(module, module.run, ctx)
        if memory in selected:
            ran = [m.KEY for m in MAIN_STACK_BENCHMARKS if m in selected]
            snapshots.append(memory.snapshot(stack, f"after {', '.join(ran) or 'nothing'}"))
        if recovery in selected:
            outcomes[recovery.KEY] = guarded(recovery, recovery.run, ctx)
    finally:
        stack.cleanup()
    return snapshots


def run_paging_stack(quick: bool, with_memory: bool, outcomes: dict[str, Outcome]) -> list:
    api_key, webhook_secret = stacks.new_secrets()
    log.info("starting the paging stack (documented rate limits) ...")
    stack = stacks.start(stacks.paging_env(api_key, webhook_secret), name="bench-paging")
    snapshots = []
    try:
        ctx = stacks.Run(stack, quick, api_key, webhook_secret)
        problem = sandbox_problem(stack)
        if problem:
            outcomes[paging.KEY] = unavailable(paging, problem)
            return snapshots
        if with_memory:
            snapshots.append(memory.snapshot(stack, "paging stack idle"))
        outcomes[paging.KEY] = guarded(paging, paging.run, ctx)
        if with_memory:
            snapshots.append(memory.snapshot(stack, "paging stack after 10,000-member all=true walks"))
    finally:
        stack.cleanup()
    return snapshots


def run_entitlements_stack(selected: list[ModuleType], quick: bool, outcomes: dict[str, Outcome]) -> None:
    api_key, webhook_secret = stacks.new_secrets()
    log.info("starting the entitlements stack (documented rate limits) ...")
    stack = stacks.start(member_sync.env(api_key, webhook_secret), name="bench-ent")
    try:
        ctx = stacks.Run(stack, quick, api_key, webhook_secret)
        problem = sandbox_problem(stack)
        for module in ENTITLEMENT_BENCHMARKS:
            if module not in selected and not (module is member_sync and access in selected):
                continue
            if problem:
                outcomes[module.KEY] = unavailable(module, problem)
                continue
            # Access checks need the synced table: the sync runs first either way.
            outcome = guarded(module, module.run, ctx)
            if module in selected:
                outcomes[module.KEY] = outcome
    finally:
        stack.cleanup()


def load_lines(total: machine.CpuUse, outcomes: list[Outcome]) -> list[str]:
    lines = [
        f"Over the whole run ({total.wall_s:.0f} s) the benchmark's own processes kept "
        f"{total.ours_cores:.2f} cores busy on average and other processes on the machine "
        f"{total.foreign_cores:.2f} cores (1-minute load average at the end: {total.load_1min:.2f}).",
    ]
    busy = [o for o in outcomes if o.cpu is not None and o.cpu.foreign_cores >= FOREIGN_LOAD_WARNING_CORES]
    if busy:
        lines.append(
            "The run overlapped other work on this shared machine (other engineers' test suites): "
            + "; ".join(
                f"during {o.number}. {o.title} others used {o.cpu.foreign_cores:.2f} cores" for o in busy
            )
            + ". The ratios hold up better than the absolute times: both sides of each "
            "comparison were interleaved through the same load."
        )
    else:
        lines.append(
            f"No benchmark overlapped heavy foreign load (other processes stayed under "
            f"{FOREIGN_LOAD_WARNING_CORES} cores on average during each)."
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="Run the benchmarks against the real stack and print the table."
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: few rounds, short loads")
    parser.add_argument("--only", action="append", choices=sorted(NAMES), help="run only this benchmark")
    parser.add_argument(
        "--output", type=Path, help=f"write the report here (default for a full run: {DEFAULT_OUTPUT})"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)

    selected = [NAMES[name] for name in args.only] if args.only else list(ALL)
    output = args.output or (None if args.quick or args.only else DEFAULT_OUTPUT)
    total = machine.CpuMeter().start()
    started = time.monotonic()
    outcomes: dict[str, Outcome] = {}
    snapshots = []
    if any(m in selected for m in (*MAIN_STACK_BENCHMARKS, recovery, memory)):
        snapshots += run_main_stack(selected, args.quick, outcomes)
    if paging in selected:
        snapshots += run_paging_stack(args.quick, memory in selected, outcomes)
    if any(m in selected for m in ENTITLEMENT_BENCHMARKS):
        run_entitlements_stack(selected, args.quick, outcomes)
    if fanout in selected:  # a stack of its own: 10,000 connections to the live program
        outcomes[fanout.KEY] = guarded(fanout, fanout.run, args.quick)
    if ratelimit in selected:  # no stack: the limiters on a throw-away store
        outcomes[ratelimit.KEY] = guarded(ratelimit, ratelimit.run, args.quick)
    if scaleout in selected:  # stacks of its own on a throw-away PostgreSQL cluster
        outcomes[scaleout.KEY] = guarded(scaleout, scaleout.run, args.quick)
    if memory in selected:
        idle = snapshots[0] if snapshots else None
        loaded = snapshots[1] if len(snapshots) > 1 else None
        if idle is None:
            outcomes[memory.KEY] = unavailable(memory, "no snapshot taken")
        else:
            outcomes[memory.KEY] = memory.outcome(idle, loaded, snapshots[2:])

    ordered = sorted(outcomes.values(), key=lambda o: o.number)
    elapsed = time.monotonic() - started
    print()
    print(report.table(ordered))
    print()
    print(f"total {elapsed:.0f} s")
    if output is not None:
        command = (
            "python -m bench"
            + (" --quick" if args.quick else "")
            + "".join(f" --only {name}" for name in args.only or ())
        )
        text = report.results_markdown(
            ordered,
            machine.describe(),
            stacks.SETTINGS,
            load_lines(total.stop(), ordered),
            command,
            elapsed,
        )
        output.write_text(text)
        print(f"wrote {output}")
    # A missed goal is a result; only a benchmark that could not run fails the command.
    return 1 if any("benchmark failed" in o.verdict for o in ordered) else 0


if __name__ == "__main__":
    sys.exit(main())
