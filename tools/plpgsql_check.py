"""plpgsql_check over every booking function and trigger function: `make lint-sql`.

Builds a throw-away database on the server of MEDBOOK_LINT_DATABASE_URL (else
MEDBOOK_TEST_DATABASE_URL; a superuser connection to a server with Debian's
postgresql-NN-plpgsql-check installed), applies `medbook migrate`, and checks

* every PL/pgSQL function of booking and booking_api, and
* every trigger function, once for each table a trigger attaches it to (the
  record types of NEW and OLD depend on the table),

with extra and security warnings on. Any message at all fails. Without a
server or the extension it says so and exits 0, except in CI (CI=true), where
that is a failure too, like the browser tests.
"""

from __future__ import annotations

import os
import sys
import uuid

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from api import schema

CHECKS = """
WITH targets AS (
    SELECT p.oid AS fn, 0::oid AS rel
      FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
     WHERE l.lanname = 'plpgsql' AND p.prorettype <> 'trigger'::regtype
       AND p.pronamespace IN ('booking'::regnamespace, 'booking_api'::regnamespace)
    UNION ALL
    SELECT t.tgfoid, t.tgrelid
      FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_language l ON l.oid = p.prolang
     WHERE l.lanname = 'plpgsql' AND NOT t.tgisinternal
       AND t.tgrelid IN (SELECT c.oid FROM pg_class c
                          WHERE c.relnamespace IN ('booking'::regnamespace, 'booking_api'::regnamespace))
)
SELECT t.fn::regprocedure::text AS function, nullif(t.rel, 0)::regclass::text AS on_table,
       r.lineno, r.level, r.sqlstate, r.message, r.detail, r.hint
  FROM targets t
 CROSS JOIN LATERAL lint.plpgsql_check_function_tb(
       t.fn, t.rel, extra_warnings => true, security_warnings => true) r
 ORDER BY 1, 2, 3
"""

COUNT = """
SELECT (SELECT count(*) FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
         WHERE l.lanname = 'plpgsql' AND p.prorettype <> 'trigger'::regtype
           AND p.pronamespace IN ('booking'::regnamespace, 'booking_api'::regnamespace)) AS functions,
       (SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
         JOIN pg_class c ON c.oid = t.tgrelid
         WHERE NOT t.tgisinternal AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')
           AND c.relnamespace IN ('booking'::regnamespace, 'booking_api'::regnamespace)) AS triggers
"""


def skip_or_fail(reason: str) -> int:
    if os.environ.get("CI"):
        print(f"plpgsql_check: {reason}", file=sys.stderr)
        return 1
    print(f"plpgsql_check skipped: {reason}")
    return 0


def main() -> int:
    url = os.environ.get("MEDBOOK_LINT_DATABASE_URL") or os.environ.get("MEDBOOK_TEST_DATABASE_URL")
    if not url:
        return skip_or_fail("set MEDBOOK_LINT_DATABASE_URL (a superuser URL of a server with plpgsql_check)")
    params = {k: v for k, v in conninfo_to_dict(url).items() if k != "dbname"}
    admin = make_conninfo(**{**params, "dbname": "postgres"})
    name = f"medbook_lint_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'plpgsql_check'").fetchone()
        if not available:
            return skip_or_fail("the server has no plpgsql_check extension "
                                "(Debian: apt-get install postgresql-NN-plpgsql-check)")
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        target = make_conninfo(**{**params, "dbname": name})
        schema.migrate(target)
        with psycopg.connect(target, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA lint")
            conn.execute("CREATE EXTENSION plpgsql_check SCHEMA lint")
            counts = conn.execute(COUNT).fetchone()
            rows = conn.execute(CHECKS).fetchall()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    for function, table, lineno, level, state, message, detail, hint in rows:
        where = f"{function}" + (f" on {table}" if table else "")
        print(f"{where}:{lineno}: {level} {state}: {message}"
              + (f" DETAIL: {detail}" if detail else "") + (f" HINT: {hint}" if hint else ""))
    print(f"plpgsql_check: {counts[0]} functions and {counts[1]} trigger attachments checked "
          f"(extra and security warnings on): {len(rows)} messages")
    return 1 if rows else 0


if __name__ == "__main__":
    sys.exit(main())
