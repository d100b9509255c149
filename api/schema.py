"""Applies the database schema: yoyo migrations, then every db/functions/*.sql.

yoyo's own post-apply hook runs only when a migration was applied, so the
function files are re-applied here on every run, in sorted order, in one
transaction, as medbook_owner (who then owns them).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import psycopg
from psycopg.conninfo import conninfo_to_dict
from yoyo import get_backend, read_migrations

DB_DIR = Path(__file__).resolve().parent.parent / "db"
MIGRATIONS_DIR = DB_DIR / "migrations"
FUNCTIONS_DIR = DB_DIR / "functions"

# Any constant will do; it only has to be the same for every migrating process.
_FUNCTIONS_LOCK = 0x6D6564626F6F6B  # "medbook"


def yoyo_uri(conninfo: str) -> str:
    """Turns a libpq connection string or URI into the form yoyo expects."""
    params = {k: str(v) for k, v in conninfo_to_dict(conninfo).items() if v is not None}
    return "postgresql+psycopg:///?" + urlencode(params)


def function_files() -> list[Path]:
    return sorted(FUNCTIONS_DIR.glob("*.sql"))


def apply_functions(conninfo: str) -> int:
    """Re-creates every booking function in one transaction; returns how many files ran."""
    files = function_files()
    with psycopg.connect(conninfo) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_FUNCTIONS_LOCK,))
        conn.execute("SET LOCAL ROLE medbook_owner")
        for path in files:
            conn.execute(path.read_text(encoding="utf-8"))
        conn.execute("RESET ROLE")
    return len(files)


def migrate(conninfo: str) -> list[str]:
    """Applies pending migrations, then all functions. Returns the applied migration ids."""
    backend = get_backend(yoyo_uri(conninfo))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    backend.connection.close()
    apply_functions(conninfo)
    return [m.id for m in pending]
