"""What the benchmarks ran on, and how busy the rest of the machine was meanwhile.

``describe()`` names the CPU, cores, Python and library versions for RESULTS.md.
``CpuMeter`` tells our own CPU time (this process and every process under it:
supervisord, web, worker, watchdog, sandbox) from everybody else's, using /proc: the
machine is shared, and a figure taken while someone's test suite ran is worth less.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

LIBRARIES = (
    "supervisor",
    "falcon",
    "waitress",
    "pyzmq",
    "requests",
    "python-dotenv",
    "python-socketio",
    "python-engineio",
)
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def cpu_model() -> str:
    try:
        for line in (PROC / "cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    try:
        import zmq

        versions["libzmq"] = zmq.zmq_version()
    except ImportError:
        pass
    return versions


def describe() -> dict[str, str]:
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": _memory_total(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "libraries": ", ".join(f"{k} {v}" for k, v in library_versions().items()),
    }


def _memory_total() -> str:
    try:
        for line in (PROC / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return "unknown"


def rss_kib(pid: int) -> int | None:
    """Resident set size (VmRSS) of ``pid`` in KiB, or None when it is gone."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """name -> CPU seconds (user + system) each live process has used so far."""
    used = {}
    for name, pid in pids.items():
        try:
            raw = (PROC / str(pid) / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        used[name] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S
    return used


class CpuAccount:
    """CPU seconds per process, summed over the batches of one side of a comparison."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids
        self.used: dict[str, float] = dict.fromkeys(pids, 0.0)

    def measure(self, fn):
        before = cpu_seconds(self.pids)
        try:
            return fn()
        finally:
            after = cpu_seconds(self.pids)
            for name in self.pids:
                if name in before and name in after:
                    self.used[name] += after[name] - before[name]

    def per_call_ms(self, calls: int) -> str:
        """'web 1.2, worker 3.4' CPU milliseconds per call, busiest first."""
        if calls <= 0:
            return "n/a"
        ranked = sorted(self.used.items(), key=lambda item: -item[1])
        return ", ".join(f"{name} {seconds * 1000 / calls:.2f}" for name, seconds in ranked)


def pss_kib(pid: int) -> int | None:
    """Proportional set size (shared pages split between their users) in KiB."""
    try:
        for line in (PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _process_times() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, CPU ticks of it and its reaped children)."""
    table = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields start after the last ')'.
        fields = raw[raw.rindex(")") + 2 :].split()
        ppid = int(fields[1])
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        table[int(entry.name)] = (ppid, utime + stime + cutime + cstime)
    return table


def _tree_ticks(table: dict[int, tuple[int, int]], root: int) -> int:
    """CPU ticks of ``root`` and all its live descendants (reaped ones sit in cutime)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            total += table[pid][1]
        todo.extend(children.get(pid, ()))
    return total


def _busy_ticks() -> int:
    fields = (PROC / "stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return user + nice + system + irq + softirq + steal


@dataclasses.dataclass(frozen=True)
class CpuUse:
    wall_s: float
    ours_cores: float  # average cores busy with this benchmark's processes
    foreign_cores: float  # average cores busy with everything else on the machine
    load_1min: float


class CpuMeter:
    """``start()`` ... ``stop()`` -> how many cores we and the others kept busy."""

    def __init__(self, root: int | None = None):
        self.root = root or os.getpid()
        self._t0 = 0.0
        self._busy0 = 0
        self._ours0 = 0

    def start(self) -> CpuMeter:
        self._t0 = time.monotonic()
        self._busy0 = _busy_ticks()
        self._ours0 = _tree_ticks(_process_times(), self.root)
        return self

    def stop(self) -> CpuUse:
        wall = max(time.monotonic() - self._t0, 1e-9)
        busy = _busy_ticks() - self._busy0
        ours = _tree_ticks(_process_times(), self.root) - self._ours0
        foreign = max(busy - ours, 0)
        return CpuUse(
            wall_s=wall,
            ours_cores=ours / CLOCK_TICKS_PER_S / wall,
            foreign_cores=foreign / CLOCK_TICKS_PER_S / wall,
            load_1min=os.getloadavg()[0],
        )
