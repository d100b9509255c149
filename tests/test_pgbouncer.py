"""Behind PgBouncer in transaction pooling mode (Debian's 1.18: no prepared statements).

Migrations, the API in MEDBOOK_TRANSACTION_POOLING mode (role and timeouts SET
LOCAL in each transaction) and the login-role deployment (MEDBOOK_DB_ROLE
empty, a member of medbook_api with role-level defaults) all go through a
private PgBouncer. CI also runs the HTTP and concurrency tests through it
(MEDBOOK_TEST_PGBOUNCER=on).
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pgbouncer
import psycopg
from conftest import JWT_SECRET, NOW, add_patient, bearer, invariant_violations, make_slot, via_bouncer
from psycopg.rows import dict_row

from api import cli, create_app, schema
from api.db import Database


def test_migrate_and_serve_through_pgbouncer(pg_server, bouncer, monkeypatch, capsys):
    """`medbook migrate` (yoyo, its lock table, the advisory lock) works through transaction pooling."""
    name = f"medbook_bouncer_{uuid.uuid4().hex[:10]}"
    with pg_server.janitor(name):
        url = via_bouncer(bouncer, pg_server.conninfo(name))
        monkeypatch.setenv("DATABASE_URL", url)
        monkeypatch.setenv("MEDBOOK_PREPARED_STATEMENTS", "off")
        assert cli.main(["migrate"]) == 0
        assert "0003_booking_schema" in capsys.readouterr().out
        assert cli.main(["migrate"]) == 0
        assert "none pending" in capsys.readouterr().out
        # Created where they belong, not wherever a leaked search_path pointed.
        with psycopg.connect(pg_server.conninfo(name)) as conn:
            where = conn.execute("SELECT to_regclass('public.appointments'), "
                                 "to_regclass('booking.appointments')::text").fetchone()
            assert where == (None, "booking.appointments")
            assert conn.execute("SELECT count(*) FROM _yoyo_migration").fetchone()[0] == len(
                [p for p in schema.MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql")])


def test_each_transaction_carries_the_role_and_timeouts(db, admin, bouncer):
    """Many calls from many threads over few pool connections: every one runs as medbook_api with its timeouts,
    even while another client sets session state on the shared server connections."""
    database = Database(via_bouncer(bouncer, db), role="medbook_api", min_size=1, max_size=4, timeout=10,
                        lock_timeout_ms=1234, statement_timeout_ms=4321, idle_in_transaction_timeout_ms=9999,
                        transaction_pooling=True, prepare=None)
    database.open()
    seen: list[tuple] = []
    stop = threading.Event()

    def pollute() -> None:
        with psycopg.connect(via_bouncer(bouncer, db), autocommit=True, prepare_threshold=None) as conn:
            while not stop.is_set():
                conn.execute("SET lock_timeout = '77s'")
                conn.execute("SET ROLE medbook_reporting")
                conn.execute("RESET ROLE")

    def call() -> None:
        for _ in range(40):
            with database.pool.connection() as conn:
                row = database._execute(conn, "SELECT current_user AS u, current_setting('lock_timeout') AS l, "
                                        "current_setting('statement_timeout') AS s, "
                                        "current_setting('TimeZone') AS z", ())[0]
            seen.append((row["u"], row["l"], row["s"], row["z"]))

    polluter = threading.Thread(target=pollute)
    polluter.start()
    try:
        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        stop.set()
        polluter.join(10)
        database.close()
    assert len(seen) == 320
    assert set(seen) == {("medbook_api", "1234ms", "4321ms", "UTC")}


def test_login_role_without_set_role_serves_every_endpoint_and_races(db, admin, world, bouncer):
    """MEDBOOK_DB_ROLE empty: connect as a member of medbook_api; bookings race correctly through PgBouncer."""
    app = create_app({"DATABASE_URL": via_bouncer(bouncer, db, as_app=True), "JWT_SECRET": JWT_SECRET,
                      "DB_ROLE": "", "TRANSACTION_POOLING": "on", "PREPARED_STATEMENTS": "off",
                      "POOL_MIN_SIZE": 2, "POOL_MAX_SIZE": 8})
    try:
        client = app.test_client()
        with app.extensions["medbook_db"].pool.connection() as conn:
            assert conn.execute("SELECT current_user AS u").fetchone()["u"] == pgbouncer.APP_ROLE
            # Exactly medbook_api's privileges: no table, no clock.
            for statement in ("SELECT 1 FROM booking.appointments", "SELECT booking.set_booking_clock(now())"):
                try:
                    conn.execute(statement)
                    raise AssertionError(f"{statement} was allowed")
                except psycopg.errors.InsufficientPrivilege:
                    pass
        assert client.get("/v1/healthz").status_code == 200
        slots = [make_slot(admin, world, NOW + timedelta(days=1, hours=h)) for h in range(5)]
        patients = [add_patient(admin)[0] for _ in range(8)]
        statuses: dict[int, list[int]] = {slot["id"]: [] for slot in slots}
        barrier = threading.Barrier(len(patients))

        def book(user: int) -> None:
            for slot in slots:
                barrier.wait(30)
                response = client.post("/v1/appointments", json={"slot_id": slot["id"]}, headers=bearer(user))
                statuses[slot["id"]].append(response.status_code)

        threads = [threading.Thread(target=book, args=(user,)) for user in patients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        for codes in statuses.values():
            assert sorted(codes) == [201] + [409] * (len(patients) - 1), codes
        assert invariant_violations(admin) == []
    finally:
        app.extensions["medbook_db"].close()


def test_api_role_defaults_are_role_level(bouncer, db):
    """The documented login role gets its search_path, TimeZone and timeouts with no SET at all."""
    with psycopg.connect(via_bouncer(bouncer, db, as_app=True), autocommit=True, row_factory=dict_row,
                         prepare_threshold=None) as conn:
        shown = conn.execute("SELECT current_setting('lock_timeout') AS l, current_setting('statement_timeout') AS s, "
                             "current_setting('TimeZone') AS z").fetchone()
        assert shown == {"l": "2s", "s": "5s", "z": "UTC"}
