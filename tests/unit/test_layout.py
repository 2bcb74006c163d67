"""The layout keeps the programs apart: web never loads the Patreon client, requests
or the worker program, so its memory and its failure modes are web's alone."""

from __future__ import annotations

import subprocess
import sys

from harness.stack import REPO

FORBIDDEN = ("requests", "worker", "patreon_client")


def modules_loaded_by(module: str) -> list[str]:
    probe = (
        f"import {module}, sys; "
        f"print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.split()


def test_web_loads_no_patreon_client_no_requests_and_no_worker():
    assert modules_loaded_by("web.app") == []


def test_web_process_loads_no_patreon_client_and_no_worker():
    # The whole web process (requests may come in through a dependency's client
    # package): still no code of ours that talks to Patreon.
    assert [name for name in modules_loaded_by("web.__main__") if not name.startswith("requests")] == []


def test_the_probe_sees_what_the_worker_loads():
    # The same probe on the worker finds all three: it is not blind.
    loaded = {name.split(".")[0] for name in modules_loaded_by("worker.actions")}
    assert loaded == set(FORBIDDEN)


def test_the_unused_kv_table_is_dropped(tmp_path):
    from store.database import Store

    store = Store(tmp_path / "s.sqlite3")
    store.migrate()
    with store.read() as conn:
        tables = {row["name"] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "kv" not in tables and "tokens" in tables


def imported_modules(package: str) -> dict[str, set[str]]:
    """The modules each file of ``package`` imports (its own import statements)."""
    import ast

    found = {}
    for path in sorted((REPO / package).glob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[path.name] = names
    return found


def test_live_imports_no_web_module_but_the_sessions():
    # What web and live share is the contract package live_events; the sessions web
    # writes are the one thing live reads from web's code.
    web_imports = {
        (file, name)
        for file, names in imported_modules("live").items()
        for name in names
        if name.split(".")[0] == "web"
    }
    assert web_imports == {("auth.py", "web.sessions")}


def test_web_imports_no_live_module():
    # Subscribe tokens, the wake-up push and the settings both read are the contract's
    # (live_events.tokens, .wakeup, .settings), so web needs nothing of the live program.
    imports = {name for names in imported_modules("web").values() for name in names}
    assert "live_events.settings" in imports  # the scan sees web's imports of the contract
    assert sorted(name for name in imports if name.split(".")[0] == "live") == []


def test_the_contract_imports_neither_program():
    imports = {name.split(".")[0] for names in imported_modules("live_events").values() for name in names}
    assert "live_events" in imports  # the scan sees the package's own imports
    assert not imports & {"web", "live", "worker"}
