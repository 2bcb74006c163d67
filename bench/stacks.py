"""The stacks the benchmarks run on, and what each benchmark is handed (``Run``).

Two stacks, both the real supervisord with the real supervisord.conf
(``harness.stack.Stack``) and the sandbox on free ports:

* ``main``: Patreon's rate limits raised far out of reach, in the sandbox and in the
  bridge, because benchmark 2 sends thousands of requests a minute and measures the
  process split, not Patreon's limits. 96 waitress threads and 64 streams so that 50
  live clients (benchmark 6) and the API load fit side by side.
* ``paging``: Patreon's documented limits (the sandbox's defaults: 100 per 2 s per
  client, 100 per minute per token) and the bridge's own defaults (95 per 2 s, 90 per
  minute), so benchmark 4's "zero 429s" is a real check of the bridge's pacing.
"""

from __future__ import annotations

import dataclasses
import secrets
import xmlrpc.client

from supervisor.xmlrpc import SupervisorTransport

from bench.client import HttpClient
from harness.stack import Stack

MEMBERS = 10_000
UNREACHABLE_LIMIT = "1000000"
CAMPAIGN_ID = "1001"
STACK_START_TIMEOUT_S = 120.0  # the sandbox seeds 10,000 members before it serves


def main_env(api_key: str, webhook_secret: str) -> dict[str, str]:
    return {
        "BRIDGE_API_KEY": api_key,
        "PATREON_WEBHOOK_SECRET": webhook_secret,
        "SANDBOX_MEMBERS": str(MEMBERS),
        "SANDBOX_RATE_LIMIT_PER_2_SECONDS": UNREACHABLE_LIMIT,
        "SANDBOX_RATE_LIMIT_PER_MINUTE": UNREACHABLE_LIMIT,
        "PATREON_RATE_LIMIT_REQUESTS_PER_2_SECONDS": UNREACHABLE_LIMIT,
        "PATREON_RATE_LIMIT_REQUESTS_PER_MINUTE": UNREACHABLE_LIMIT,
        "WEB_THREADS": "96",
    }


def paging_env(api_key: str, webhook_secret: str) -> dict[str, str]:
    return {
        "BRIDGE_API_KEY": api_key,
        "PATREON_WEBHOOK_SECRET": webhook_secret,
        "SANDBOX_MEMBERS": str(MEMBERS),
    }


SETTINGS = [
    f"Main stack: SANDBOX_MEMBERS={MEMBERS}, WEB_THREADS=96, and the rate "
    f"limits raised to {UNREACHABLE_LIMIT} in the sandbox (SANDBOX_RATE_LIMIT_PER_2_SECONDS, "
    "SANDBOX_RATE_LIMIT_PER_MINUTE) and in the bridge (PATREON_RATE_LIMIT_REQUESTS_PER_2_SECONDS, "
    "PATREON_RATE_LIMIT_REQUESTS_PER_MINUTE): benchmark 2 measures the process split, not "
    "Patreon's limits, which would cap both sides at 100 requests a minute.",
    f"Paging stack (benchmark 4): SANDBOX_MEMBERS={MEMBERS} with Patreon's documented limits "
    "(sandbox defaults: 100 per 2 s per client, 100 per minute per client and user) and the "
    "bridge's default pacing (95 per 2 s, 90 per minute).",
    "BRIDGE_API_KEY and PATREON_WEBHOOK_SECRET are random per run; BRIDGE_TEST_ACTIONS=1 "
    "(harness.stack.Stack sets it) enables /api/patreon/_test/sleep for benchmark 5.",
    "HTTP client for both sides of every comparison: one keep-alive http.client "
    "connection per thread; concurrency by threads in the benchmark process, which runs "
    "on the same 2 cores as the stack. Benchmark 8 instead drives both its sides from "
    "bench.open_loop, an open-loop generator in a process of its own (32 keep-alive "
    "connections, latency from each request's scheduled time).",
]


@dataclasses.dataclass
class Run:
    """One stack, and the knobs every benchmark reads."""

    stack: Stack
    quick: bool
    api_key: str
    webhook_secret: str

    def scale(self, full: int, quick: int) -> int:
        return quick if self.quick else full

    def seconds(self, full: float, quick: float) -> float:
        return quick if self.quick else full

    def client(self) -> HttpClient:
        return HttpClient(self.stack.base_url)

    def server_client(self) -> HttpClient:
        """A client of the site's backend: the server key on every request."""
        return HttpClient(self.stack.base_url, {"Authorization": f"Bearer {self.api_key}"})

    def sandbox_client(self, token: str | None = None) -> HttpClient:
        headers = {"User-Agent": "patreon-bridge-bench"}  # Patreon refuses requests without one
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return HttpClient(self.stack.sandbox_url, headers)


def rpc(stack: Stack) -> xmlrpc.client.ServerProxy:
    """supervisord's XML-RPC over its unix socket: fast enough to poll a pid every few ms."""
    transport = SupervisorTransport(serverurl=f"unix://{stack.dir / 'var' / 'supervisor.sock'}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def supervised_pids(stack: Stack) -> dict[str, int]:
    """Program name ('web', 'worker', 'live', 'watchdog', 'sandbox') -> pid, for running ones.

    web, worker and live are numprocs programs (processes web_00, live_00, ...): each
    process is listed by its own name, and the first one also as its program's."""
    pids: dict[str, int] = {}
    for info in rpc(stack).supervisor.getAllProcessInfo():
        if info["pid"]:
            pids[info["name"]] = info["pid"]
            program, _, num = info["name"].rpartition("_")
            if program in ("web", "worker", "live") and num == "00":
                pids[program] = info["pid"]
    return pids


def new_secrets() -> tuple[str, str]:
    return secrets.token_urlsafe(24), secrets.token_hex(16)


def start(env: dict[str, str], name: str) -> Stack:
    stack = Stack(env, name=name)
    try:
        stack.start(timeout_s=STACK_START_TIMEOUT_S)
    except BaseException:
        stack.cleanup()
        raise
    return stack
