"""Benchmark 7, memory: resident size of the bridge's processes, idle and after load.

The bridge is supervisord, web, worker, the live program and the watchdog (when the
eventlistener exists); their VmRSS (from /proc/<pid>/status) is summed. What each
heavy dependency adds to a bare interpreter is measured beside it (one fresh process
per import), since that is what limits the sum. The sandbox stands in for
patreon.com and is reported on its own line, outside the sum.

Goal: under 110 MB together when idle, and growing less than 30% under load.
"""

from __future__ import annotations

import dataclasses
import site
import subprocess
import sys
from pathlib import Path

from bench.machine import pss_kib, rss_kib
from bench.report import Line, Outcome, fmt_pct
from bench.stacks import supervised_pids
from harness.stack import Stack

NUMBER = 7
KEY = "memory"
TITLE = "Memory (RSS)"
GOAL = "supervisord + web + worker + live + watchdog at most 110 MB idle, growing under 30% under load"

IDLE_GOAL_MB = 110.0
GROWTH_GOAL = 0.30
BRIDGE = ("supervisord", "web", "worker", "live", "watchdog")
# The dependencies the programs load, each measured alone: (label, the import, who loads it).
IMPORTS = (
    ("SQLAlchemy", "import sqlalchemy", "web, worker, live"),
    ("requests", "import requests", "worker"),
    ("Falcon + waitress", "import falcon, waitress", "web"),
    ("cryptography (Fernet)", "import cryptography.fernet", "web, worker, live"),
    ("pyzmq", "import zmq", "web, worker, live"),
    ("uvicorn + python-socketio", "import uvicorn, socketio", "live"),
)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    label: str
    rss_kib: dict[str, int]  # bridge process name -> KiB
    pss_kib: dict[str, int]  # the same, shared pages split between the processes sharing them
    sandbox_kib: int | None

    @property
    def total_mb(self) -> float:
        return sum(self.rss_kib.values()) / 1024.0

    @property
    def pss_mb(self) -> float:
        return sum(self.pss_kib.values()) / 1024.0

    def breakdown(self) -> str:
        return ", ".join(f"{name} {kib / 1024:.1f}" for name, kib in self.rss_kib.items())


def snapshot(stack: Stack, label: str) -> Snapshot:
    pids = supervised_pids(stack)
    pids["supervisord"] = stack.process.pid if stack.process is not None else 0
    sizes, proportional = {}, {}
    for name in BRIDGE:
        if pids.get(name):
            size, share = rss_kib(pids[name]), pss_kib(pids[name])
            if size is not None:
                sizes[name] = size
            if share is not None:
                proportional[name] = share
    sandbox = rss_kib(pids["sandbox"]) if pids.get("sandbox") else None
    return Snapshot(label, sizes, proportional, sandbox)


def interpreter_floor_kib(statement: str = "pass") -> int | None:
    """VmRSS of a Python that runs only ``statement``: with "pass", the price of each
    extra process; with an import, that import's price plus it."""
    code = f"{statement}\nimport re;print(re.search(r'VmRSS:\\s+(\\d+)', open('/proc/self/status').read()).group(1))"
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
        return int(out.stdout.strip())
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def startup_imports() -> list[str]:
    """site-packages .pth files that import code at interpreter start-up."""
    found = []
    for folder in site.getsitepackages():
        for pth in sorted(Path(folder).glob("*.pth")):
            try:
                lines = pth.read_text(errors="replace").splitlines()
            except OSError:
                continue
            if any(line.startswith(("import ", "import\t")) for line in lines):
                found.append(pth.name)
    return found


def outcome(idle: Snapshot, loaded: Snapshot | None, extra: list[Snapshot]) -> Outcome:
    result = Outcome(NUMBER, KEY, TITLE, GOAL)
    missing = [name for name in BRIDGE if name not in idle.rss_kib]
    result.add(
        Line(
            f"bridge idle ({idle.label}), MB",
            f"{idle.total_mb:.1f} MB ({idle.breakdown()})",
            goal=f"< {IDLE_GOAL_MB:.0f} MB",
            met=idle.total_mb < IDLE_GOAL_MB,
        )
    )
    if loaded is None:
        result.add(Line("bridge after load", goal=f"< {GROWTH_GOAL:.0%} growth", unavailable="no load ran"))
    else:
        growth = loaded.total_mb / idle.total_mb - 1.0
        result.add(
            Line(
                f"bridge after load ({loaded.label}), MB",
                f"{loaded.total_mb:.1f} MB ({loaded.breakdown()}), growth {fmt_pct(growth)}",
                goal=f"< {GROWTH_GOAL:.0%} growth",
                met=growth < GROWTH_GOAL,
            )
        )
    result.add(
        Line(
            "bridge PSS (shared pages counted once), idle / after load, MB",
            f"{idle.pss_mb:.1f} / " + (f"{loaded.pss_mb:.1f}" if loaded else "n/a"),
        )
    )
    bare = interpreter_floor_kib()
    if bare is not None:
        result.add(
            Line(
                "floor: one bare Python interpreter (python -c pass) on this machine, MB",
                f"{bare / 1024:.1f} (x {len(idle.rss_kib)} processes = {bare * len(idle.rss_kib) / 1024:.1f})",
            )
        )
        costs = []
        for label, statement, users in IMPORTS:
            size = interpreter_floor_kib(statement)
            if size is not None:
                costs.append(f"{label} +{(size - bare) / 1024:.1f} ({users})")
        result.add(Line("what one import adds to a bare interpreter, MB (loaded by)", "; ".join(costs) or "not measured"))
    startup = startup_imports()
    if startup:
        result.notes.append(
            "This machine's interpreter runs code from .pth files at every start-up "
            f"({', '.join(startup)}); that is part of the bare-interpreter floor above, paid by "
            "every Python process."
        )
    for index, snap in enumerate(extra):
        # Extra snapshots come in pairs from the paging stack: idle, then after its load.
        growth = f", growth {fmt_pct(snap.total_mb / extra[0].total_mb - 1.0)}" if index else ""
        result.add(Line(f"bridge: {snap.label}, MB", f"{snap.total_mb:.1f} MB ({snap.breakdown()}){growth}"))
    sandbox = [s for s in (idle, loaded, *extra) if s is not None and s.sandbox_kib]
    if sandbox:
        result.add(
            Line(
                "sandbox (stands in for patreon.com, not in the sum), MB",
                ", ".join(f"{s.label} {s.sandbox_kib / 1024:.1f}" for s in sandbox),
            )
        )
    if missing:
        result.notes.append(
            f"Not running, so not in the sum: {', '.join(missing)}"
            + (" (no [eventlistener:watchdog] in supervisord.conf yet)." if "watchdog" in missing else ".")
        )
    result.notes.append(
        "RSS is VmRSS from /proc/<pid>/status. Idle: right after start-up and one status and "
        "health request. After load: after benchmarks 1, 2, 3 and 6 on the same stack, before "
        "benchmark 5 restarts the worker."
    )
    return result
