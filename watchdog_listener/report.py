"""The watchdog's report file, ``DATA_DIR/watchdog.json``: written by the watchdog,
read by web for ``/api/patreon/status``.

Kept apart from ``watchdog_listener.listener`` so that web reads it without importing ZeroMQ
sockets and supervisor's listener machinery it never uses.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATE_FILE = "watchdog.json"


def state_path(data_dir: Path, process: str | None = None) -> Path:
    """worker_00's report (or a single worker's): watchdog.json; worker_NN's:
    watchdog-worker_NN.json."""
    return Path(data_dir) / (STATE_FILE if process is None else f"watchdog-{process}.json")


def read_state(data_dir: Path, process: str | None = None) -> dict[str, Any] | None:
    """The watchdog's last report, or None if it has none (or it is unreadable)."""
    return _read(state_path(data_dir, process))


def read_states(data_dir: Path, first: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every worker's report, worker_00's first (``first``: already read by the caller)."""
    first = read_state(data_dir) if first is None else first
    others = map(_read, sorted(Path(data_dir).glob("watchdog-worker_*.json")))
    return [state for state in (first, *others) if state is not None]


def _read(path: Path) -> dict[str, Any] | None:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def write_state(path: Path, report: dict[str, Any]) -> None:
    """Replace the report atomically, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
