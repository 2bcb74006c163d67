"""The one timestamp format of stored rows, the watchdog's report and /status: UTC,
ISO 8601 with milliseconds and a ``Z`` (``2026-12-01T21:05:00.123Z``), so that text
order is time order."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
