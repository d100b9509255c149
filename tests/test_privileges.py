"""Least privilege, proven by logging in as each role.

Other services share the database, so the database defends itself: a login
role that is a member of medbook_api may run the booking functions and touch
nothing else; one that is a member of medbook_reporting may read the reporting
views and nothing else. The roles are created here exactly as docs/OPERATIONS.md
tells a DBA to create them for another service.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import psycopg.types.json
import pytest
from conftest import NOW, ROOT, World, make_slot
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from api import schema

BOOKING_TABLES = ["booking.patients", "booking.practitioner_booking_settings", "booking.availability_slots",
                  "booking.appointments", "booking.appointment_history", "booking.booking_clock",
                  "booking.time_zones", "booking.schedule_rules", "booking.time_off_periods", "booking.cursor_key",
                  "booking.idempotency_keys", "booking.event_types", "booking.events",
                  "booking.webhook_subscriptions", "booking.webhook_deliveries", "booking.webhook_attempts",
                  "booking.webhook_dispatch", "booking.calendar_tokens", "booking.event_log_settings"]
MEDBOOK_TABLES = ["public.users", "public.practitioners"]
VIEWS = ["booking_reporting.reporting_slot_utilisation", "booking_reporting.reporting_appointment_counts"]
# Which roles may use which schema (USAGE): exactly what each needs.
SCHEMA_USAGE = {"medbook_api": {"booking_api"},
                "medbook_reporting": {"booking_api", "booking_reporting"},
                "medbook_maintenance": {"booking_api"},
                "medbook_events": {"booking_api"},
                "medbook_webhooks": {"booking_api"}}
# What medbook_api may execute: the booking_api functions, and nothing else.
API_FUNCTIONS = {"booking_now", "create_slot", "update_slot", "delete_slot", "get_slot",
                 "list_available_slots", "book_slot", "cancel_appointment", "get_appointment",
                 "list_upcoming_appointments", "list_practitioner_appointments",
                 "set_booking_settings", "get_booking_settings", "get_me", "get_practitioner",
                 "list_practitioners", "set_schedule", "get_schedule", "publish_schedule", "create_time_off",
                 "list_time_off", "delete_time_off", "create_slots", "delete_slots", "list_slots",
                 "reschedule_appointment", "complete_appointment", "mark_no_show", "list_patient_appointments",
                 "list_appointment_history", "perform_idempotently", "issue_calendar_token", "calendar_feed",
                 # the FHIR facade's (db/functions/120-139)
                 "search_slots", "search_appointments", "get_patient", "book_slot_expecting",
                 "replace_appointment"}
REPORTING_FUNCTIONS = {"booking_now", "check_booking_invariants"}
MAINTENANCE_FUNCTIONS = {"purge_idempotency_keys"}
# The event log's readers and the webhook delivery worker (migration 0011, tests/test_events.py).
EVENTS_FUNCTIONS = {"read_booking_events", "booking_events_start"}
WEBHOOKS_FUNCTIONS = {"fan_out_webhook_events", "claim_webhook_deliveries", "record_webhook_attempt",
                      "release_webhook_deliveries", "notify_booking_events"}
INSUFFICIENT_PRIVILEGE = "42501"


def login_role(admin: psycopg.Connection, db: str, group: str) -> Iterator[psycopg.Connection]:
    name = f"svc_{group}_{secrets.token_hex(4)}"
    password = secrets.token_hex(12)
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE {}").format(
        sql.Identifier(name), sql.Literal(password), sql.Identifier(group)))
    params = {**conninfo_to_dict(db), "user": name, "password": password}
    try:
        with psycopg.connect(make_conninfo(**params), autocommit=True, row_factory=dict_row) as conn:
            assert conn.execute("SELECT current_user AS u, session_user AS s").fetchone() == {
                "u": name, "s": name}
            yield conn
    finally:
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def api_login(admin: psycopg.Connection, db: str) -> Iterator[psycopg.Connection]:
    yield from login_role(admin, db, "medbook_api")


@pytest.fixture
def reporting_login(admin: psycopg.Connection, db: str) -> Iterator[psycopg.Connection]:
    yield from login_role(admin, db, "medbook_reporting")


@pytest.fixture
def booked(admin: psycopg.Connection, world: World) -> dict:
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    make_slot(admin, world, NOW + timedelta(days=2, hours=1), minutes=60)
    return admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot["id"])).fetchone()


def refused(conn: psycopg.Connection, statement: str, params: tuple = ()) -> str:
    """Runs a statement that must fail; returns its SQLSTATE."""
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(statement, params)
    return caught.value.sqlstate


# A plain column of each table, for an UPDATE that only a privilege check can stop.
COLUMN = {"patients": "created_at", "practitioner_booking_settings": "updated_at",
          "availability_slots": "updated_at", "appointments": "cancellation_reason",
          "appointment_history": "changed_at", "booking_clock": "frozen_at", "time_zones": "name",
          "users": "name", "practitioners": "bio", "schedule_rules": "slot_minutes",
          "time_off_periods": "reason", "cursor_key": "secret",
          "idempotency_keys": "error_hint", "event_types": "description", "events": "type",
          "webhook_subscriptions": "url", "webhook_deliveries": "attempts", "webhook_attempts": "worker",
          "webhook_dispatch": "last_event_id", "calendar_tokens": "created_at",
          "event_log_settings": "notify_on_commit"}


def writes(table: str) -> list[str]:
    column = COLUMN[table.split(".")[-1]]
    return [f"INSERT INTO {table} DEFAULT VALUES",
            f"UPDATE {table} SET {column} = {column}",
            f"DELETE FROM {table}",
            f"TRUNCATE {table}"]


@pytest.mark.parametrize("table", BOOKING_TABLES + MEDBOOK_TABLES)
def test_api_role_cannot_read_or_write_tables(api_login, booked, table):
    assert refused(api_login, f"SELECT * FROM {table}") == INSUFFICIENT_PRIVILEGE
    for statement in writes(table):
        assert refused(api_login, statement) == INSUFFICIENT_PRIVILEGE, statement


def test_api_role_cannot_read_reporting_views(api_login):
    for view in VIEWS:
        assert refused(api_login, f"SELECT * FROM {view}") == INSUFFICIENT_PRIVILEGE


def test_api_role_cannot_move_the_clock(api_login, admin):
    assert refused(api_login, "SELECT booking.set_booking_clock(%s)", (NOW + timedelta(days=400),)) \
        == INSUFFICIENT_PRIVILEGE
    assert refused(api_login, "INSERT INTO booking.booking_clock (frozen_at) VALUES (now())") \
        == INSUFFICIENT_PRIVILEGE
    assert refused(api_login, "UPDATE booking.booking_clock SET frozen_at = now()") == INSUFFICIENT_PRIVILEGE
    assert refused(api_login, "DELETE FROM booking.booking_clock") == INSUFFICIENT_PRIVILEGE
    assert api_login.execute("SELECT booking_api.booking_now() AS t").fetchone()["t"] == NOW


def test_api_role_runs_the_booking_functions(api_login, admin, world):
    slot = api_login.execute("SELECT * FROM create_slot(%s, %s, %s, %s)",
                             (world.practitioner_user, world.practitioner, NOW + timedelta(days=1),
                              NOW + timedelta(days=1, minutes=30))).fetchone()
    slot = api_login.execute("SELECT * FROM update_slot(%s, %s, %s, %s)",
                             (world.practitioner_user, slot["id"], NOW + timedelta(days=1, hours=1),
                              NOW + timedelta(days=1, hours=2))).fetchone()
    assert api_login.execute("SELECT * FROM get_slot(%s, %s)",
                             (world.patient_user, slot["id"])).fetchone()["status"] == "available"
    listed = api_login.execute("SELECT * FROM list_available_slots(%s, %s)",
                               (world.patient_user, world.practitioner)).fetchall()
    assert [row["id"] for row in listed] == [slot["id"]]
    appointment = api_login.execute("SELECT * FROM book_slot(%s, %s)",
                                    (world.patient_user, slot["id"])).fetchone()
    assert api_login.execute("SELECT * FROM get_appointment(%s, %s)",
                             (world.practitioner_user, appointment["id"])).fetchone()["status"] == "booked"
    upcoming = api_login.execute("SELECT * FROM list_upcoming_appointments(%s, %s)",
                                 (world.patient_user, world.patient)).fetchall()
    assert [row["id"] for row in upcoming] == [appointment["id"]]
    cancelled = api_login.execute("SELECT * FROM cancel_appointment(%s, %s, 'ill')",
                                  (world.patient_user, appointment["id"])).fetchone()
    assert cancelled["status"] == "cancelled"
    api_login.execute("SELECT * FROM set_booking_settings(%s, %s, 'Europe/London', '2 hours')",
                      (world.practitioner_user, world.practitioner))
    api_login.execute("SELECT * FROM delete_slot(%s, %s)", (world.practitioner_user, slot["id"]))
    assert admin.execute("SELECT count(*) AS n FROM booking.availability_slots").fetchone()["n"] == 0
    assert admin.execute("SELECT count(*) AS n FROM appointment_history").fetchone()["n"] == 2


def test_api_role_cannot_call_internal_helpers_or_change_functions(api_login, world):
    calls = [
        ("SELECT booking.booking_require_user(%s)", (world.patient_user,)),
        ("SELECT booking.booking_require_practitioner(%s, %s)", (world.practitioner_user, world.practitioner)),
        ("SELECT booking.booking_validate_slot_times(now(), now(), now())", ()),
        ("SELECT * FROM booking.booking_visible_appointment(%s, 1)", (world.patient_user,)),
        ("SELECT * FROM booking_api.check_booking_invariants()", ()),
        ("SELECT booking.booking_lock_practitioner(%s, true)", (world.practitioner,)),
        ("SELECT booking.slot_out(s) FROM booking.availability_slots s", ()),
        ("SELECT booking.booking_hmac('\\x00'::bytea)", ()),
        ("SELECT booking.booking_cursor_encode('[]'::jsonb, now(), 1)", ()),
        ("SELECT * FROM booking.booking_publish(%s, current_date)", (world.practitioner,)),
        ("CALL booking_api.publish_all_schedules(28)", ()),
        ("SELECT * FROM booking.booking_claim_slot(1, now())", ()),
        ("SELECT * FROM booking.booking_record_attendance(%s, 1, 'completed')", (world.practitioner_user,)),
        ("SELECT * FROM booking.booking_appointment_page('patient_id', 1, 'all', 10, NULL, NULL)", ()),
        ("SELECT booking.booking_require_version(1, NULL, '')", ()),
        ("SELECT booking_api.purge_idempotency_keys()", ()),
    ]
    for statement, params in calls:
        assert refused(api_login, statement, params) == INSUFFICIENT_PRIVILEGE, statement
    # Not the owner: cannot replace, alter or drop a function, nor plant objects in the schema.
    assert refused(api_login, "ALTER FUNCTION booking_api.book_slot(bigint, bigint) SECURITY INVOKER") \
        == INSUFFICIENT_PRIVILEGE
    assert refused(api_login, "DROP FUNCTION booking_api.book_slot(bigint, bigint)") == INSUFFICIENT_PRIVILEGE
    assert refused(api_login, "CREATE TABLE public.booking_now (x int)") == INSUFFICIENT_PRIVILEGE
    for namespace in ("booking", "booking_api", "booking_reporting"):
        assert refused(api_login, f"CREATE TABLE {namespace}.planted (x int)") == INSUFFICIENT_PRIVILEGE
        assert refused(api_login, f"CREATE FUNCTION {namespace}.booking_now() RETURNS timestamptz "
                                  "LANGUAGE sql AS $$ SELECT now() $$") == INSUFFICIENT_PRIVILEGE
    assert refused(api_login, "SET ROLE medbook_owner") == INSUFFICIENT_PRIVILEGE


def test_api_role_cannot_escape_through_a_temp_function(api_login, admin, world):
    """pg_temp is searched last: a caller's temporary lookalike is never what a function runs."""
    api_login.execute("CREATE FUNCTION pg_temp.booking_now() RETURNS timestamptz "
                      "LANGUAGE sql AS $$ SELECT '2000-01-01'::timestamptz $$")
    slot = api_login.execute("SELECT * FROM create_slot(%s, %s, %s, %s)",
                             (world.practitioner_user, world.practitioner, NOW + timedelta(hours=1),
                              NOW + timedelta(hours=2))).fetchone()
    created = admin.execute("SELECT created_at FROM booking.availability_slots WHERE id = %s",
                            (slot["id"],)).fetchone()
    assert created["created_at"] == NOW
    api_login.execute("DROP FUNCTION pg_temp.booking_now()")  # so the role can be dropped at once


def test_reporting_role_reads_only_the_views(reporting_login, booked, world):
    utilisation = reporting_login.execute("SELECT * FROM booking_reporting.reporting_slot_utilisation").fetchall()
    assert utilisation == [{"practitioner_id": world.practitioner, "day": (NOW + timedelta(days=2)).date(),
                            "slots": 2, "booked_slots": 1, "offered_minutes": 90,
                            "booked_minutes": 30}]
    counts = reporting_login.execute("SELECT * FROM booking_reporting.reporting_appointment_counts").fetchall()
    assert counts == [{"practitioner_id": world.practitioner, "day": (NOW + timedelta(days=2)).date(),
                       "status": "booked", "appointments": 1, "cancelled_by_practitioner": 0}]
    for table in BOOKING_TABLES + MEDBOOK_TABLES:
        assert refused(reporting_login, f"SELECT * FROM {table}") == INSUFFICIENT_PRIVILEGE, table
        for statement in writes(table):
            assert refused(reporting_login, statement) == INSUFFICIENT_PRIVILEGE, statement
    for view in VIEWS:
        # Aggregate views are not updatable at all (55000); the grant does not allow it either.
        assert refused(reporting_login, f"DELETE FROM {view}") in {INSUFFICIENT_PRIVILEGE, "55000"}
        may_write = reporting_login.execute(
            "SELECT has_table_privilege(%s, 'INSERT, UPDATE, DELETE, TRUNCATE') AS w", (view,)).fetchone()
        assert may_write["w"] is False


def test_reporting_role_cannot_run_booking_functions(reporting_login, booked, world):
    calls = [
        ("SELECT * FROM book_slot(%s, %s)", (world.other_patient_user, booked["slot_id"])),
        ("SELECT * FROM cancel_appointment(%s, %s)", (world.patient_user, booked["id"])),
        ("SELECT * FROM get_appointment(%s, %s)", (world.patient_user, booked["id"])),
        ("SELECT * FROM list_upcoming_appointments(%s, %s)", (world.patient_user, world.patient)),
        ("SELECT * FROM get_slot(%s, %s)", (world.patient_user, booked["slot_id"])),
        ("SELECT * FROM create_slot(%s, %s, now() + interval '9 days', now() + interval '10 days')",
         (world.practitioner_user, world.practitioner)),
        ("SELECT booking.set_booking_clock(now())", ()),
    ]
    for statement, params in calls:
        assert refused(reporting_login, statement, params) == INSUFFICIENT_PRIVILEGE, statement
    assert reporting_login.execute("SELECT count(*) AS n FROM check_booking_invariants()").fetchone()["n"] == 0


@pytest.fixture
def maintenance_login(admin: psycopg.Connection, db: str) -> Iterator[psycopg.Connection]:
    yield from login_role(admin, db, "medbook_maintenance")


def test_maintenance_role_purges_keys_and_nothing_else(maintenance_login, admin, booked, world):
    """A cron login granted medbook_maintenance (docs/OPERATIONS.md) may purge expired keys, only that."""
    slot = make_slot(admin, world, NOW + timedelta(days=5))
    admin.execute("SELECT * FROM perform_idempotently(%s, 'k1', 'book_slot', %s)",
                  (world.patient_user, psycopg.types.json.Jsonb({"slot_id": slot["id"]})))
    assert maintenance_login.execute("SELECT booking_api.purge_idempotency_keys() AS n").fetchone()["n"] == 0
    admin.execute("SELECT set_booking_clock(%s)", (NOW + timedelta(hours=24),))
    assert maintenance_login.execute("SELECT booking_api.purge_idempotency_keys() AS n").fetchone()["n"] == 1
    for table in BOOKING_TABLES + MEDBOOK_TABLES:
        assert refused(maintenance_login, f"SELECT * FROM {table}") == INSUFFICIENT_PRIVILEGE, table
    for statement, params in [("SELECT * FROM booking_api.book_slot(%s, %s)", (world.other_patient_user, slot["id"])),
                              ("SELECT * FROM booking_api.perform_idempotently(%s, 'k2', 'book_slot', '{}')",
                               (world.patient_user,)),
                              ("SELECT * FROM booking_api.check_booking_invariants()", ()),
                              ("SELECT booking.set_booking_clock(now())", ())]:
        assert refused(maintenance_login, statement, params) == INSUFFICIENT_PRIVILEGE, statement


def test_reporting_views_carry_no_personal_data(admin):
    columns = admin.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'booking_reporting' AND table_name = ANY(%s) ORDER BY 1, ordinal_position",
        ([view.split(".")[1] for view in VIEWS],)).fetchall()
    by_view: dict[str, list[str]] = {}
    for row in columns:
        by_view.setdefault(row["table_name"], []).append(row["column_name"])
    assert by_view == {
        "reporting_appointment_counts": ["practitioner_id", "day", "status", "appointments",
                                         "cancelled_by_practitioner"],
        "reporting_slot_utilisation": ["practitioner_id", "day", "slots", "booked_slots",
                                       "offered_minutes", "booked_minutes"],
    }


def test_cancellations_count_by_who_cancelled(admin, reporting_login, world):
    first = make_slot(admin, world, NOW + timedelta(days=3))
    second = make_slot(admin, world, NOW + timedelta(days=3, hours=1))
    for slot, actor in ((first, world.patient_user), (second, world.practitioner_user)):
        appointment = admin.execute("SELECT * FROM book_slot(%s, %s)",
                                    (world.patient_user, slot["id"])).fetchone()
        admin.execute("SELECT * FROM cancel_appointment(%s, %s)", (actor, appointment["id"]))
    counts = reporting_login.execute("SELECT * FROM booking_reporting.reporting_appointment_counts").fetchall()
    assert counts == [{"practitioner_id": world.practitioner, "day": (NOW + timedelta(days=3)).date(),
                       "status": "cancelled", "appointments": 2, "cancelled_by_practitioner": 1}]


def test_ownership_and_execute_grants(admin):
    owners = admin.execute(
        "SELECT c.relnamespace::regnamespace::text || '.' || c.relname AS name, "
        "pg_get_userbyid(c.relowner) AS owner FROM pg_class c "
        "WHERE c.relnamespace IN ('booking'::regnamespace, 'booking_reporting'::regnamespace) "
        "AND c.relkind IN ('r', 'v')").fetchall()
    assert {row["name"] for row in owners} == set(BOOKING_TABLES + VIEWS)
    assert {row["owner"] for row in owners} == {"medbook_owner"}

    functions = admin.execute(
        "SELECT p.proname, p.prosecdef, p.proconfig, "
        "       has_function_privilege('medbook_api', p.oid, 'EXECUTE') AS api, "
        "       has_function_privilege('medbook_reporting', p.oid, 'EXECUTE') AS reporting, "
        "       has_function_privilege('medbook_maintenance', p.oid, 'EXECUTE') AS maintenance, "
        "       coalesce(p.proacl::text LIKE '%%=X%%' AND p.proacl::text ~ '(^|[{,])=', false) AS public "
        "FROM pg_proc p WHERE p.pronamespace IN ('booking'::regnamespace, 'booking_api'::regnamespace) "
        "AND pg_get_userbyid(p.proowner) = 'medbook_owner'").fetchall()
    assert {f["proname"] for f in functions if f["api"]} == API_FUNCTIONS
    assert {f["proname"] for f in functions if f["reporting"]} == REPORTING_FUNCTIONS
    assert {f["proname"] for f in functions if f["maintenance"]} == MAINTENANCE_FUNCTIONS
    for role, expected in (("medbook_events", EVENTS_FUNCTIONS), ("medbook_webhooks", WEBHOOKS_FUNCTIONS)):
        granted = admin.execute(
            "SELECT p.proname FROM pg_proc p WHERE p.pronamespace IN ('booking'::regnamespace, "
            "'booking_api'::regnamespace) AND pg_get_userbyid(p.proowner) = 'medbook_owner' "
            "AND has_function_privilege(%s, p.oid, 'EXECUTE')", (role,)).fetchall()
        assert {f["proname"] for f in granted} == expected, role
    assert not [f["proname"] for f in functions if f["public"]]
    for f in functions:
        if f["prosecdef"]:
            assert f["proconfig"] == ["search_path=pg_catalog, booking, pg_temp"], f["proname"]


def test_reporting_views_migration_rolls_back_and_applies_again(admin):
    migrations = ROOT / "db" / "migrations"
    forward = (migrations / "0004_reporting_views.sql").read_text()
    backward = (migrations / "0004_reporting_views.rollback.sql").read_text()

    def views() -> set[str]:
        rows = admin.execute("SELECT schemaname || '.' || viewname AS v FROM pg_views "
                             "WHERE schemaname LIKE 'booking%%' AND has_table_privilege('medbook_reporting', "
                             "format('%I.%I', schemaname, viewname), 'SELECT')")
        return {row["v"] for row in rows}

    assert views() == set(VIEWS)
    # As migrate runs 0004 on a new database (api/schema.py SEARCH_PATHS).
    admin.execute(f"SET search_path = {schema.SEARCH_PATHS['0004_reporting_views']}")
    with admin.transaction():
        admin.execute(backward)
    assert views() == set()
    with admin.transaction():
        admin.execute(forward)
    assert views() == set(VIEWS)


def test_each_role_uses_exactly_its_schemas(admin):
    for role, expected in SCHEMA_USAGE.items():
        usable = admin.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'booking%%' "
            "AND has_schema_privilege(%s, oid, 'USAGE')", (role,)).fetchall()
        assert {row["nspname"] for row in usable} == expected, role
        creatable = admin.execute(
            "SELECT nspname FROM pg_namespace WHERE has_schema_privilege(%s, oid, 'CREATE')",
            (role,)).fetchall()
        assert creatable == [], role
