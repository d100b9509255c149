"""The booking feature lives in its own schemas and keeps out of public.

- a database built by the migrations of the last release (everything in
  public), with data in it, ends after `medbook migrate` in the same state as
  a fresh build, data intact;
- tables and functions named like ours that other teams keep in public
  neither break the migrations nor are touched by any booking function;
- re-applying the function files leaves no function behind that no file
  defines;
- a migration that cannot get its lock in time gives up and migrate retries.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from conftest import ROOT
from yoyo import get_backend, read_migrations

from api import schema

# The last release built everything in public: main before the schemas existed.
LAST_PUBLIC_RELEASE = "43f41f12843bcc307c39d5cfe7c336a1992927fe"

BOOKING_SCHEMAS = ("booking", "booking_api", "booking_reporting")

# Everything about the booking schemas that a migration decides, as text rows.
FINGERPRINT = """
WITH ours AS (SELECT oid, nspname FROM pg_namespace WHERE nspname IN ('booking', 'booking_api', 'booking_reporting')),
ext AS (SELECT objid, classid FROM pg_depend WHERE deptype = 'e')
SELECT 'schema ' || n.nspname || ' ' || pg_get_userbyid(n.nspowner) || ' ' || coalesce(n.nspacl::text, '')
  FROM pg_namespace n JOIN ours USING (oid)
UNION ALL
SELECT 'relation ' || o.nspname || '.' || c.relname || ' ' || c.relkind::text || ' ' || pg_get_userbyid(c.relowner)
       || ' ' || coalesce(c.relacl::text, '')
  FROM pg_class c JOIN ours o ON o.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'v', 'i', 'S', 'c')
   AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)
UNION ALL
SELECT 'column ' || o.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || ' ' || a.attnotnull || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ours o ON o.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v', 'c')
UNION ALL
SELECT 'constraint ' || o.nspname || '.' || c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid)
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN ours o ON o.oid = c.relnamespace
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN ours o ON o.oid = c.relnamespace
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN ours o ON o.oid = c.relnamespace
 WHERE NOT t.tgisinternal
UNION ALL
SELECT 'view ' || o.nspname || '.' || c.relname || ' ' || pg_get_viewdef(c.oid)
  FROM pg_class c JOIN ours o ON o.oid = c.relnamespace WHERE c.relkind = 'v'
UNION ALL
SELECT 'function ' || p.oid::regprocedure::text || ' ' || pg_get_userbyid(p.proowner) || ' ' || p.prosecdef
       || ' ' || coalesce(p.proconfig::text, '') || ' ' || coalesce(p.proacl::text, '') || ' ' || md5(p.prosrc)
  FROM pg_proc p JOIN ours o ON o.oid = p.pronamespace
 WHERE NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_proc'::regclass AND ext.objid = p.oid)
UNION ALL
SELECT 'public ' || c.relname || ' ' || pg_get_userbyid(c.relowner)
  FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v')
   AND c.relname NOT IN ('users', 'practitioners') AND c.relname !~ '^_?yoyo'
UNION ALL
SELECT 'public function ' || p.oid::regprocedure::text FROM pg_proc p
 WHERE p.pronamespace = 'public'::regnamespace AND p.proowner = 'medbook_owner'::regrole
UNION ALL
SELECT 'role ' || r.rolname || ' ' || n.nspname || ' ' || has_schema_privilege(r.oid, n.oid, 'USAGE')
       || ' ' || has_schema_privilege(r.oid, n.oid, 'CREATE')
  FROM pg_roles r CROSS JOIN pg_namespace n
 WHERE r.rolname IN ('medbook_owner', 'medbook_api', 'medbook_reporting')
   AND n.nspname IN ('public', 'booking', 'booking_api', 'booking_reporting')
ORDER BY 1
"""

# The same booking history, as rows a DBA would compare.
DATA = {
    "patients": "SELECT id, user_id FROM {s}patients ORDER BY id",
    "settings": "SELECT practitioner_id, time_zone, cancellation_notice FROM {s}practitioner_booking_settings",
    "slots": "SELECT id, practitioner_id, start_time, end_time, status FROM {s}availability_slots ORDER BY id",
    "appointments": "SELECT id, slot_id, patient_id, status, cancelled_by, cancellation_reason "
                    "FROM {s}appointments ORDER BY id",
    "history": "SELECT id, appointment_id, from_status, to_status, actor_user_id FROM {s}appointment_history "
               "ORDER BY id",
}


def fresh_database(pg_server):
    return pg_server.janitor(f"medbook_sch_{uuid.uuid4().hex[:10]}")


def fingerprint(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [row[0] for row in conn.execute(FINGERPRINT)]


def last_public_release(tmp_path: Path) -> Path:
    """db/ of the last release whose objects lived in public, from the repository's history."""
    git = shutil.which("git")
    found = git and subprocess.run([git, "-C", str(ROOT), "cat-file", "-e", LAST_PUBLIC_RELEASE],  # noqa: S603
                                   capture_output=True).returncode == 0
    if not found:
        if os.environ.get("CI"):
            pytest.fail("the repository's history (git) is needed to rebuild the last release")
        pytest.skip("git history of the last release is not available")
    archive = subprocess.run([git, "-C", str(ROOT), "archive", LAST_PUBLIC_RELEASE, "db"],  # noqa: S603
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "db"


def build_last_release(url: str, db_dir: Path) -> None:
    """What that release's `medbook migrate` did: its migrations, then its function files as the owner."""
    backend = get_backend(schema.yoyo_uri(url))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(read_migrations(str(db_dir / "migrations"))))
    backend.connection.close()
    with psycopg.connect(url) as conn:
        conn.execute("SET LOCAL ROLE medbook_owner")
        for path in sorted((db_dir / "functions").glob("*.sql")):
            conn.execute(path.read_text())


def book_and_cancel(conn: psycopg.Connection, s: str) -> None:
    """Some booking history through the functions (s: the schema prefix of that release)."""
    conn.execute("INSERT INTO users (email, name, role) VALUES ('gp@x.test', 'GP', 'practitioner'), "
                 "('pat@x.test', 'Pat', 'patient')")
    conn.execute("INSERT INTO practitioners (user_id, specialty) VALUES (1, 'GP')")
    conn.execute(f"INSERT INTO {s or ''}patients (user_id) VALUES (2)".replace("booking_api.", "booking."))
    clock = "booking." if s else ""
    conn.execute(f"SELECT {clock}set_booking_clock('2027-01-01T00:00Z')")
    conn.execute(f"SELECT * FROM {s}set_booking_settings(1, 1, 'Europe/London', '2 hours')")
    for hour in (9, 10, 11):
        conn.execute(f"SELECT * FROM {s}create_slot(1, 1, '2027-01-05T{hour:02}:00Z', '2027-01-05T{hour:02}:30Z')")
    first = conn.execute(f"SELECT id FROM {s}book_slot(2, 1)").fetchone()[0]
    conn.execute(f"SELECT * FROM {s}book_slot(2, 2)")
    conn.execute(f"SELECT * FROM {s}cancel_appointment(1, {first}, 'clinic closed')")


def test_upgrade_from_public_ends_like_a_fresh_build(pg_server, tmp_path):
    old_db = last_public_release(tmp_path)
    with fresh_database(pg_server) as upgraded, fresh_database(pg_server) as fresh:
        upgraded_url = pg_server.conninfo(upgraded.dbname)
        fresh_url = pg_server.conninfo(fresh.dbname)
        build_last_release(upgraded_url, old_db)
        with psycopg.connect(upgraded_url, autocommit=True) as conn:
            book_and_cancel(conn, "")
            before = {name: conn.execute(query.format(s="")).fetchall() for name, query in DATA.items()}

        applied = schema.migrate(upgraded_url)
        # The two that moved booking, then any migration that landed since.
        assert applied[:2] == ["0002a_booking_schemas", "0005_booking_schemas"]
        assert all(later > "0005" for later in applied[2:]), applied
        schema.migrate(fresh_url)

        assert fingerprint(upgraded_url) == fingerprint(fresh_url)
        with psycopg.connect(upgraded_url, autocommit=True) as conn:
            after = {name: conn.execute(query.format(s="booking.")).fetchall() for name, query in DATA.items()}
            assert after == before
            assert conn.execute("SELECT count(*) FROM booking_api.check_booking_invariants()").fetchone()[0] == 0
            # The moved data works with the new functions: book the slot the cancellation freed.
            assert conn.execute("SELECT status FROM booking_api.book_slot(2, 1)").fetchone()[0] == "booked"
            left_in_public = conn.execute(
                "SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace "
                "AND pg_get_userbyid(c.relowner) = 'medbook_owner'").fetchone()[0]
            assert left_in_public == 0


def test_rollback_of_the_move_restores_the_last_release(pg_server, tmp_path):
    old_db = last_public_release(tmp_path)
    with fresh_database(pg_server) as janitor:
        url = pg_server.conninfo(janitor.dbname)
        build_last_release(url, old_db)
        with psycopg.connect(url, autocommit=True) as conn:
            book_and_cancel(conn, "")
            before = {name: conn.execute(query.format(s="public.")).fetchall() for name, query in DATA.items()}
        original = fingerprint(url)
        schema.migrate(url)

        backend = get_backend(schema.yoyo_uri(url))
        migrations = read_migrations(str(schema.MIGRATIONS_DIR))
        with backend.lock():
            backend.rollback_migrations(backend.to_rollback(migrations.filter(
                # and every migration that landed since, newest first
                lambda m: m.id in {"0002a_booking_schemas", "0005_booking_schemas"} or m.id > "0005")))
        backend.connection.close()
        build_last_release(url, old_db)  # the last release's migrate re-creates its functions

        assert fingerprint(url) == original
        with psycopg.connect(url, autocommit=True) as conn:
            assert {name: conn.execute(query.format(s="public.")).fetchall() for name, query in DATA.items()} \
                == before


FOREIGN_OBJECTS = """
CREATE TABLE public.appointments (id serial PRIMARY KEY, note text NOT NULL);
CREATE TABLE public.patients (id serial PRIMARY KEY, nhs_number text NOT NULL);
CREATE TABLE public.availability_slots (id int PRIMARY KEY, status text);
CREATE TABLE public.time_zones (name text PRIMARY KEY);
INSERT INTO public.appointments (note) VALUES ('dentist'), ('optician');
INSERT INTO public.patients (nhs_number) VALUES ('485 777 3456');
INSERT INTO public.availability_slots VALUES (1, 'available'), (2, 'available');
CREATE FUNCTION public.book_slot(bigint, bigint) RETURNS text LANGUAGE sql AS $$ SELECT 'theirs' $$;
CREATE FUNCTION public.booking_now() RETURNS timestamptz LANGUAGE sql AS $$ SELECT '2001-01-01'::timestamptz $$;
GRANT ALL ON public.appointments, public.patients, public.availability_slots TO PUBLIC;
"""
FOREIGN_STATE = """
SELECT (SELECT json_agg(a ORDER BY id) FROM public.appointments a)::text,
       (SELECT json_agg(p ORDER BY id) FROM public.patients p)::text,
       (SELECT json_agg(s ORDER BY id) FROM public.availability_slots s)::text,
       (SELECT count(*) FROM public.time_zones),
       public.book_slot(1, 1)
"""


def test_tables_named_like_ours_in_public_are_left_alone(pg_server):
    """Another team's public.appointments (and friends) exist before booking is first deployed."""
    with fresh_database(pg_server) as janitor:
        url = pg_server.conninfo(janitor.dbname)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE users (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
                         "email text NOT NULL UNIQUE, name text NOT NULL, role text NOT NULL, "
                         "created_at timestamptz NOT NULL DEFAULT now())")
            conn.execute(FOREIGN_OBJECTS)
            theirs = conn.execute(FOREIGN_STATE).fetchone()

        schema.migrate(url)
        schema.migrate(url)  # and again: re-applying the functions leaves theirs alone too

        with psycopg.connect(url, autocommit=True) as conn:
            # A DBA's usual search_path puts public first: the booking functions do not care.
            conn.execute("SET search_path = public, booking_api, booking")
            book_and_cancel(conn, "booking_api.")
            assert conn.execute("SELECT count(*) FROM booking.appointments").fetchone()[0] == 2
            assert conn.execute("SELECT count(*) FROM booking_api.check_booking_invariants()").fetchone()[0] == 0
            assert conn.execute(FOREIGN_STATE).fetchone() == theirs
            assert conn.execute("SELECT public.booking_now()").fetchone()[0].year == 2001


def test_migrate_drops_functions_no_file_defines(db):
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SET ROLE medbook_owner")
        # An old overload (a signature since changed) and a function whose file was removed.
        conn.execute("CREATE FUNCTION booking_api.book_slot(p_actor bigint, p_slot bigint, p_note text) "
                     "RETURNS text LANGUAGE sql AS $$ SELECT 'stale' $$")
        conn.execute("GRANT EXECUTE ON FUNCTION booking_api.book_slot(bigint, bigint, text) TO medbook_api")
        conn.execute("CREATE FUNCTION booking.booking_removed_helper() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$")
        conn.execute("CREATE TYPE booking_api.removed_shape AS (x int)")
        conn.execute("RESET ROLE")

    schema.apply_functions(db)

    with psycopg.connect(db) as conn:
        left = conn.execute(
            "SELECT p.pronamespace::regnamespace::text, p.proname, pg_get_function_identity_arguments(p.oid) "
            "FROM pg_proc p WHERE p.proname IN ('book_slot', 'booking_removed_helper')").fetchall()
        assert left == [("booking_api", "book_slot", "p_actor_user_id bigint, p_slot_id bigint")]
        assert conn.execute("SELECT to_regtype('booking_api.removed_shape')").fetchone()[0] is None
        # Every function there now comes from a file.
        defined = set()
        for path in schema.function_files():
            defined |= {name for name in _defined_functions(path.read_text())}
        present = {row[0] for row in conn.execute(
            "SELECT n.nspname || '.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname IN ('booking', 'booking_api') AND p.prorettype <> 'trigger'::regtype "
            "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')")}
        assert present == defined


def _defined_functions(text: str) -> set[str]:
    import re

    return set(re.findall(r"CREATE OR REPLACE (?:FUNCTION|PROCEDURE) (\w+\.\w+)\(", text))


def test_migrate_gives_up_on_a_busy_table_and_retries(pg_server, monkeypatch, caplog):
    """0003 adds foreign keys to Medbook's live users table: it waits at most lock_timeout each try."""
    monkeypatch.setattr(schema, "LOCK_TIMEOUT_MS", 200)
    with fresh_database(pg_server) as janitor:
        url = pg_server.conninfo(janitor.dbname)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE users (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
                         "email text NOT NULL UNIQUE, name text NOT NULL, role text NOT NULL, "
                         "created_at timestamptz NOT NULL DEFAULT now())")
        holder = psycopg.connect(url)
        holder.execute("INSERT INTO users (email, name, role) VALUES ('busy@x.test', 'Busy', 'patient')")

        # Never released: migrate stops after its retries, with 0003 not applied.
        started = time.monotonic()
        with pytest.raises(psycopg.errors.LockNotAvailable):
            schema.migrate(url, retries=1)
        assert time.monotonic() - started < 10
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT to_regclass('booking.appointments')").fetchone()[0] is None

        # Released during the first wait: the retry succeeds.
        threading.Timer(0.6, holder.commit).start()
        applied = schema.migrate(url, retries=3)
        assert "0003_booking_schema" in applied
        assert "migration lock timeout" in caplog.text
        holder.close()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 1
            assert conn.execute("SELECT to_regclass('booking.appointments')").fetchone()[0] is not None
