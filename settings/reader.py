"""The one reader of configuration values, for every process (web, worker, watchdog
and the sandbox).

A ``Reader`` reads variables from one mapping (``settings.environment.read_environment``:
the environment over ``.env``); a blank value counts as unset. Each typed read either
returns the value or records one ``(variable, problem)`` and returns the default, so
a process can report every bad variable at once, one line each, before it exits 78.
The problems are phrased for the bridge's ``ConfigError`` lines
(``❌ Configuration error: PORT must be ...``); the sandbox's reader keeps its own
phrasing (``SANDBOX_PORT: expected an integer ...``) by overriding ``integer`` and
``seconds`` only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class Reader:
    def __init__(self, values: Mapping[str, str]):
        self.values = values
        self.problems: list[tuple[str, str]] = []

    def problem(self, name: str, problem: str) -> None:
        self.problems.append((name, problem))

    def raw(self, name: str) -> str | None:
        """The stripped value, or None when unset or blank."""
        value = (self.values.get(name) or "").strip()
        return value or None

    def text(self, name: str, default: str | None = None) -> str | None:
        return self.raw(name) or default

    def integer(self, name: str, default: int, minimum: int = 1, maximum: int = 10**9) -> int:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            self.problem(name, f"must be a whole number, got {raw!r}")
            return default
        if not minimum <= value <= maximum:
            self.problem(name, f"must be between {minimum} and {maximum}, got {value}")
            return default
        return value

    def process_slot(
        self, numprocs_name: str, process_num_name: str, count: int, *, what: str, count_setting: str, maximum: int
    ) -> int:
        """This process's number among the ``count`` that ``count_setting`` configures, for
        a program supervisord runs with ``numprocs``: ``numprocs_name`` (its numprocs)
        must equal ``count`` and ``process_num_name`` (its process_num) be below it,
        or the two sides would wait for missing processes or never reach the extra ones.
        Returns the number (0 when it is out of range)."""
        numprocs = self.integer(numprocs_name, count, 1, maximum)
        if numprocs != count:
            self.problem(
                numprocs_name,
                f"supervisord runs {numprocs} {what} but {count} are configured: set {count_setting} to match numprocs",
            )
        process_num = self.integer(process_num_name, 0, 0, maximum - 1)
        if process_num >= count:
            self.problem(process_num_name, f"is {process_num} but only {count} are configured ({count_setting})")
            return 0
        return process_num

    def seconds(self, name: str, default: float, minimum: float, maximum: float) -> float:
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            self.problem(name, f"must be a number of seconds, got {raw!r}")
            return default
        if not minimum <= value <= maximum:  # also rejects nan
            self.problem(name, f"must be between {minimum:g} and {maximum:g}, got {raw}")
            return default
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.raw(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        self.problem(name, f"must be true or false, got {raw!r}")
        return default

    def url(self, name: str, default: str | None = None) -> str | None:
        value = self.text(name, default)
        if value is not None and not value.startswith(("http://", "https://")):
            self.problem(name, f"must be an http(s) URL, got {value!r}")
        return value

    def origins(self, name: str) -> tuple[str, ...]:
        """A comma list of web origins (scheme://host[:port]), or ``*`` for any."""
        items = tuple(item.strip().rstrip("/") for item in (self.text(name) or "").split(",") if item.strip())
        bad = [o for o in items if o != "*" and (not o.startswith(("http://", "https://")) or "/" in o[8:])]
        if bad:
            self.problem(name, f"must be origins like https://example.com or *, got {bad}")
            return ()
        return items

    def parsed(self, name: str, parse: Callable[[str], Any], default: Any) -> Any:
        """``parse(raw)``; its ``ValueError`` text is the problem."""
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError as ex:
            self.problem(name, str(ex))
            return default
