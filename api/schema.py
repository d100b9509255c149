"""Applies the database schema: yoyo migrations, then every db/functions/*.sql.

yoyo's own post-apply hook runs only when a migration was applied, so the
function files are re-applied here on every run, in sorted order, in one
transaction, as medbook_owner (who then owns them). That transaction first
drops every function in booking_api, every non-trigger function in booking
and every type in booking_api, so a function no file defines any more (or an
old overload of a changed signature) never lingers (db/CONVENTIONS.md).

Every migration runs with a lock_timeout, so a migration that needs a lock on
a busy live table (Medbook's users and practitioners) gives up instead of
queueing every other session behind it; migrate then retries a few times.

Everything here works through PgBouncer in transaction pooling mode: each
migration runs in one transaction that starts with SET LOCAL lock_timeout (and
SET LOCAL search_path where needed), never with session state; the locks are
yoyo's lock table and a transaction-level advisory lock; and no statement is
prepared (a server-side prepared statement belongs to whichever server
connection the pooler handed out).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from urllib.parse import urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict
from yoyo import get_backend, read_migrations

log = logging.getLogger("medbook.schema")

DB_DIR = Path(__file__).resolve().parent.parent / "db"
MIGRATIONS_DIR = DB_DIR / "migrations"
FUNCTIONS_DIR = DB_DIR / "functions"

# Any constant will do; it only has to be the same for every migrating process.
_FUNCTIONS_LOCK = 0x6D6564626F6F6B  # "medbook"

# Landed migrations that create objects by unqualified name. They were written
# for public; on a database that does not have them yet they run with the
# booking schemas first in the search_path, so their objects are created
# there (and never collide with a table another team has in public). On a
# database that already has them, 0005 moved those objects instead.
SEARCH_PATHS = {
    "0003_booking_schema": "booking, public",
    "0004_reporting_views": "booking_reporting, booking, public",
}

LOCK_TIMEOUT_MS = int(os.environ.get("MEDBOOK_MIGRATE_LOCK_TIMEOUT_MS", "5000"))
LOCK_RETRIES = int(os.environ.get("MEDBOOK_MIGRATE_LOCK_RETRIES", "5"))
LOCK_NOT_AVAILABLE = "55P03"

# Run before the function files: drop what the previous run created.
_DROP_FUNCTIONS = """
DO $$
DECLARE
    v_function regprocedure;
    v_type     regtype;
BEGIN
    FOR v_function IN
        SELECT p.oid::regprocedure FROM pg_proc p
         WHERE (p.pronamespace = 'booking_api'::regnamespace
                OR (p.pronamespace = 'booking'::regnamespace AND p.prorettype <> 'trigger'::regtype))
           AND NOT EXISTS (SELECT 1 FROM pg_depend d  -- btree_gist may live in booking
                            WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
    LOOP
        EXECUTE format('DROP ROUTINE %s', v_function);  -- a function or a procedure
    END LOOP;
    FOR v_type IN
        SELECT t.oid::regtype FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid
         WHERE t.typnamespace = 'booking_api'::regnamespace AND c.relkind = 'c'
    LOOP
        EXECUTE format('DROP TYPE %s', v_type);
    END LOOP;
END
$$
"""


def yoyo_uri(conninfo: str) -> str:
    """Turns a libpq connection string or URI into the form yoyo expects.

    No startup options are added: PgBouncer refuses (or ignores) `options`;
    the lock_timeout is set inside each migration's transaction instead.
    """
    params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v is not None}
    return "postgresql+psycopg:///?" + urlencode(params)


def _unprepared(backend):
    """yoyo's connection, with psycopg's automatic prepared statements off."""
    backend.connection.prepare_threshold = None
    return backend


def function_files() -> list[Path]:
    return sorted(FUNCTIONS_DIR.glob("*.sql"))


def apply_functions(conninfo: str) -> int:
    """Re-creates every booking function in one transaction; returns how many files ran."""
    files = function_files()
    with psycopg.connect(conninfo, prepare_threshold=None) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_FUNCTIONS_LOCK,))
        conn.execute("SET LOCAL ROLE medbook_owner")
        # Signatures name every type with its schema; nothing resolves through public.
        conn.execute("SET LOCAL search_path = pg_catalog")
        conn.execute(_DROP_FUNCTIONS)
        for path in files:
            conn.execute(path.read_text(encoding="utf-8"))
        conn.execute("RESET ROLE")
    return len(files)


def _apply_pending(conninfo: str) -> list[str]:
    backend = _unprepared(get_backend(yoyo_uri(conninfo)))
    try:
        with backend.lock():
            pending = backend.to_apply(read_migrations(str(MIGRATIONS_DIR)))
            for migration in pending:
                log.info("applying %s", migration.id)
                backend.ensure_internal_schema_updated()
                # yoyo's apply_one, with the migration's settings local to its own
                # transaction (its steps run in a savepoint inside it).
                with _unprepared(backend.copy()) as runner, runner.transaction():
                    runner.execute(f"SET LOCAL lock_timeout = {int(LOCK_TIMEOUT_MS)}")
                    search_path = SEARCH_PATHS.get(migration.id)
                    if search_path is not None:
                        runner.execute(f"SET LOCAL search_path = {search_path}")
                    migration.process_steps(runner, "apply")
                backend.log_migration(migration, "apply")
                with backend.transaction():
                    backend.mark_one(migration, log=False)
            return [m.id for m in pending]
    finally:
        backend.connection.close()


def migrate(conninfo: str, *, retries: int = LOCK_RETRIES) -> list[str]:
    """Applies pending migrations, then all functions. Returns the applied migration ids.

    A migration that hits its lock_timeout is rolled back by yoyo; migrate
    waits and tries again (what was applied before it stays applied), at
    most `retries` more times, then raises the lock error.
    """
    applied: list[str] = []
    for attempt in range(retries + 1):
        try:
            applied += _apply_pending(conninfo)
            break
        except psycopg.Error as exc:
            if exc.sqlstate != LOCK_NOT_AVAILABLE or attempt == retries:
                raise
            delay = min(2.0 ** attempt, 10.0)
            log.warning("migration lock timeout (attempt %d of %d); retrying in %.0f s",
                        attempt + 1, retries + 1, delay)
            time.sleep(delay)
    apply_functions(conninfo)
    return applied
