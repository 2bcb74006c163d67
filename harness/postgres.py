"""A throw-away PostgreSQL cluster for the tests: Debian's ``postgresql`` package
(``initdb`` and ``pg_ctl``), a data folder under the system's temp folder, a free
port on 127.0.0.1, trust authentication for local connections only.

PostgreSQL refuses to run as root: when the tests run as root the cluster runs as the
``postgres`` user (the package creates it) through ``runuser``, in a folder it owns.
A machine without the binaries skips the PostgreSQL tests with a loud reason
(``.ci/run`` installs the package). ``stop``/``start`` stop and restart the same
cluster on the same port: the failure tests take the server away under load.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.stack import free_port

SERVER_USER = "postgres"
MISSING = (
    "PostgreSQL tests SKIPPED: initdb/pg_ctl not found (apt-get install postgresql, as .ci/run does);"
    " the store was NOT tested against PostgreSQL"
)


def binaries() -> Path | None:
    """The folder holding initdb and pg_ctl (the newest Debian version), or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    for folder in reversed(candidates):
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    found = shutil.which("pg_ctl")
    return Path(found).resolve().parent if found and shutil.which("initdb") else None


class Cluster:
    def __init__(self, bin_dir: Path):
        self.bin_dir = bin_dir
        self.dir = Path(tempfile.mkdtemp(prefix="pb-postgres-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = free_port()
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", SERVER_USER, "--"]

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*self._as_user, *args], check=check, capture_output=True, text=True, timeout=120, cwd=self.dir
        )

    def init(self) -> Cluster:
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-instructions",
        )
        return self.start()

    def start(self) -> Cluster:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir}"
            " -c max_connections=300 -c fsync=off"
        )
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        """``fast``: a clean shutdown; ``immediate``: as if the server were killed."""
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
