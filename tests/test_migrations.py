"""Migrations run on an empty database and on Medbook's production one, and never alter its tables."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from urllib.parse import unquote_plus

import psycopg
import pytest
from conftest import JWT_SECRET

from api import auth, cli, schema

COLUMNS = """SELECT table_name, column_name, data_type, is_nullable, column_default
               FROM information_schema.columns
              WHERE table_schema = 'public' AND table_name IN ('users', 'practitioners')
              ORDER BY table_name, ordinal_position"""

PRODUCTION = """
CREATE TABLE users (
    id serial PRIMARY KEY,
    email varchar(320) NOT NULL UNIQUE,
    name varchar(200) NOT NULL,
    role varchar(32) NOT NULL DEFAULT 'patient',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE practitioners (
    id serial PRIMARY KEY,
    user_id integer NOT NULL REFERENCES users (id),
    specialty varchar(100) NOT NULL,
    bio text,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO users (email, name, role) VALUES ('gp@clinic.test', 'Dr Rao', 'practitioner'),
                                             ('pat@home.test', 'Pat', 'patient');
INSERT INTO practitioners (user_id, specialty) VALUES (1, 'General practice');
"""


def fresh_database(pg_server):
    return pg_server.janitor(f"medbook_mig_{uuid.uuid4().hex[:10]}")


def test_migrate_on_existing_medbook_tables_leaves_them_untouched(pg_server):
    with fresh_database(pg_server) as janitor:
        url = pg_server.conninfo(janitor.dbname)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(PRODUCTION)
            before = conn.execute(COLUMNS).fetchall()
            rows_before = conn.execute("SELECT * FROM users ORDER BY id").fetchall()

        applied = schema.migrate(url)
        assert applied == ["0001_medbook_baseline", "0002_booking_roles", "0002a_booking_schemas",
                           "0003_booking_schema", *applied[4:]]

        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(COLUMNS).fetchall() == before
            assert conn.execute("SELECT * FROM users ORDER BY id").fetchall() == rows_before
            # Booking works on top of the production tables (integer ids).
            conn.execute("INSERT INTO booking.patients (user_id) VALUES (2)")
            conn.execute("SELECT booking.set_booking_clock('2027-01-01T00:00Z')")
            slot = conn.execute("SELECT id FROM booking_api.create_slot(1, 1, '2027-01-02T09:00Z', "
                                "'2027-01-02T09:30Z')").fetchone()[0]
            assert conn.execute("SELECT status FROM booking_api.book_slot(2, %s)",
                                (slot,)).fetchone()[0] == "booked"


def test_migrate_is_repeatable_and_reapplies_functions_every_time(pg_server):
    with fresh_database(pg_server) as janitor:
        url = pg_server.conninfo(janitor.dbname)
        assert "0003_booking_schema" in schema.migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            tables = conn.execute(COLUMNS).fetchall()
            assert {t[0] for t in tables} == {"users", "practitioners"}
            conn.execute("SET ROLE medbook_owner")
            conn.execute("CREATE OR REPLACE FUNCTION booking_api.booking_now() RETURNS timestamptz "
                         "LANGUAGE sql STABLE AS $$ SELECT '1999-01-01'::timestamptz $$")
            conn.execute("RESET ROLE")
            conn.execute("DELETE FROM booking.booking_clock")

        assert schema.migrate(url) == []
        with psycopg.connect(url, autocommit=True) as conn:
            now, real = conn.execute("SELECT booking_api.booking_now(), now()").fetchone()
            assert now == real
            owners = conn.execute(
                "SELECT DISTINCT pg_get_userbyid(proowner) FROM pg_proc "
                "WHERE proname IN ('book_slot', 'cancel_appointment', 'create_slot')").fetchall()
            assert owners == [("medbook_owner",)]
            tables = conn.execute(
                "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'booking' AND tablename IN "
                "('availability_slots', 'appointments', 'appointment_history', 'patients')").fetchall()
            assert tables == [("medbook_owner",)]


def test_every_function_file_defines_a_commented_function(db):
    with psycopg.connect(db) as conn:
        for path in schema.function_files():
            text = path.read_text()
            if "CREATE OR REPLACE PROCEDURE" in text:  # commits as it goes: no SET clause allowed
                assert "COMMENT ON PROCEDURE" in text, path.name
                continue
            assert "CREATE OR REPLACE FUNCTION" in text and "COMMENT ON FUNCTION" in text, path.name
            assert "SET search_path = pg_catalog, booking, pg_temp" in text, path.name
        uncommented = conn.execute(
            "SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname IN ('booking', 'booking_api') AND pg_get_userbyid(p.proowner) = 'medbook_owner' "
            "AND p.prorettype <> 'trigger'::regtype AND obj_description(p.oid, 'pg_proc') IS NULL").fetchall()
        assert uncommented == []
        definer_without_path = conn.execute(
            "SELECT p.proname FROM pg_proc p WHERE p.prosecdef "
            "AND pg_get_userbyid(p.proowner) = 'medbook_owner' "
            "AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%')").fetchall()
        assert definer_without_path == []


def test_cli_token_is_accepted_by_the_api(monkeypatch, capsys):
    monkeypatch.setenv("MEDBOOK_JWT_SECRET", JWT_SECRET)
    assert cli.main(["token", "42", "--hours", "1"]) == 0
    token = capsys.readouterr().out.strip()
    import jwt

    claims = jwt.decode(token, JWT_SECRET, algorithms=[auth.ALGORITHM])
    assert claims["sub"] == "42" and claims["exp"] - claims["iat"] == 3600


def test_cli_migrate_uses_database_url(pg_server, monkeypatch, capsys):
    with fresh_database(pg_server) as janitor:
        monkeypatch.setenv("DATABASE_URL", pg_server.conninfo(janitor.dbname))
        assert cli.main(["migrate"]) == 0
        assert "0003_booking_schema" in capsys.readouterr().out
        assert cli.main(["migrate"]) == 0
        assert "none pending" in capsys.readouterr().out


# Migrations that landed before each migration set its own lock_timeout; migrate
# gives their connections one (api/schema.py) and they are never edited.
LANDED_WITHOUT_LOCK_TIMEOUT = {"0001_medbook_baseline", "0002_booking_roles", "0003_booking_schema",
                               "0004_reporting_views"}


def test_landed_migrations_are_pinned_by_checksum():
    """yoyo knows a migration by its id only: an edited landed migration would never run again."""
    pinned = {}
    for line in (schema.MIGRATIONS_DIR / "CHECKSUMS").read_text().splitlines():
        digest, name = line.split()
        pinned[name] = digest
    files = {path.name: path for path in schema.MIGRATIONS_DIR.glob("*.sql")}
    assert sorted(files) == sorted(pinned), \
        "every migration file has exactly one line in db/migrations/CHECKSUMS (sha256sum *.sql)"
    changed = [name for name, path in files.items()
               if hashlib.sha256(path.read_bytes()).hexdigest() != pinned[name]]
    assert not changed, f"landed migrations changed: {changed}; add a new migration instead"


def test_every_migration_sets_a_lock_timeout():
    for path in sorted(schema.MIGRATIONS_DIR.glob("*.sql")):
        migration = path.name.removesuffix(".sql").removesuffix(".rollback")
        if migration not in LANDED_WITHOUT_LOCK_TIMEOUT:
            assert "SET LOCAL lock_timeout" in path.read_text(), path.name
    # Not as a startup option (PgBouncer refuses those), but SET LOCAL in each migration's transaction.
    assert "options" not in unquote_plus(schema.yoyo_uri("dbname=x"))
    assert "SET LOCAL lock_timeout" in Path(schema.__file__).read_text()


def test_cli_psql_passes_psql_options_through(db, monkeypatch, capfd):
    monkeypatch.setenv("DATABASE_URL", db)
    assert cli.main(["psql", "-X", "-A", "-t", "-c", "SELECT 40 + 2"]) == 0
    assert capfd.readouterr().out.strip() == "42"


CONSISTENCY_TRIGGERS = """SELECT t.tgname, t.tgfoid::regproc::text AS function
                            FROM pg_trigger t
                           WHERE t.tgname LIKE '%%booking_consistency' ORDER BY 1"""


CONSISTENCY_KEYS = """SELECT conname FROM pg_constraint
                        WHERE conname IN ('appointments_holder_slot_is_booked', 'availability_slots_booked_has_holder')
                        ORDER BY 1"""


def _slot(conn) -> int:
    conn.execute("SELECT booking.set_booking_clock('2027-01-01T00:00Z')")
    user = conn.execute("INSERT INTO public.users (email, name, role) VALUES "
                        "(gen_random_uuid() || '@x.test', 'P', 'practitioner') RETURNING id").fetchone()[0]
    practitioner = conn.execute("INSERT INTO public.practitioners (user_id, specialty) "
                                "VALUES (%s, 'GP') RETURNING id", (user,)).fetchone()[0]
    return conn.execute("SELECT id FROM booking_api.create_slot(%s, %s, '2027-01-02T09:00Z', "
                        "'2027-01-02T09:30Z')", (user, practitioner)).fetchone()[0]


def test_consistency_moves_to_foreign_keys_in_0020_and_both_roll_back(pg_server):
    """0020 keeps the slot/appointment rule by two deferred composite foreign keys; its rollback
    restores the two constraint triggers 0008 split (plpgsql_check proves each per table), and
    0008's rollback and forward still apply on that schema. Each form bites at commit."""
    triggers = (schema.MIGRATIONS_DIR / "0020_consistency_by_foreign_keys.rollback.sql").read_text()
    keys = (schema.MIGRATIONS_DIR / "0020_consistency_by_foreign_keys.sql").read_text()
    rollback = (schema.MIGRATIONS_DIR / "0008_consistency_trigger_per_table.rollback.sql").read_text()
    forward = (schema.MIGRATIONS_DIR / "0008_consistency_trigger_per_table.sql").read_text()
    split = [("appointments_booking_consistency", "booking.booking_assert_appointment_slots_consistent"),
             ("availability_slots_booking_consistency", "booking.booking_assert_slot_status_consistent")]
    foreign_keys = [("appointments_holder_slot_is_booked",), ("availability_slots_booked_has_holder",)]
    with fresh_database(pg_server) as janitor:
        url = pg_server.conninfo(janitor.dbname)
        schema.migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute(CONSISTENCY_TRIGGERS).fetchall() == []
            assert conn.execute(CONSISTENCY_KEYS).fetchall() == foreign_keys
            slot = _slot(conn)
            with pytest.raises(psycopg.errors.ForeignKeyViolation):
                conn.execute("UPDATE booking.availability_slots SET status = 'booked' WHERE id = %s", (slot,))
            with conn.transaction():
                conn.execute(triggers)
            assert conn.execute(CONSISTENCY_TRIGGERS).fetchall() == split
            assert conn.execute(CONSISTENCY_KEYS).fetchall() == []
            assert conn.execute("SELECT to_regprocedure('booking.booking_assert_slot_consistent()')"
                                ).fetchone()[0] is None
            for sql, shape in ((rollback, [(name, "booking.booking_assert_slot_consistent") for name, _ in split]),
                               (forward, split)):
                with conn.transaction():
                    conn.execute(sql)
                assert conn.execute(CONSISTENCY_TRIGGERS).fetchall() == shape
                # Both sides still bite at commit.
                slot = _slot(conn)
                with pytest.raises(psycopg.errors.CheckViolation):
                    conn.execute("UPDATE booking.availability_slots SET status = 'booked' WHERE id = %s", (slot,))
            with conn.transaction():
                conn.execute(keys)
            assert conn.execute(CONSISTENCY_TRIGGERS).fetchall() == []
            assert conn.execute(CONSISTENCY_KEYS).fetchall() == foreign_keys
            slot = _slot(conn)
            with pytest.raises(psycopg.errors.ForeignKeyViolation):
                conn.execute("UPDATE booking.availability_slots SET status = 'booked' WHERE id = %s", (slot,))

