"""Operators can see and stop the service: request logs, Prometheus metrics, a draining SIGTERM."""

from __future__ import annotations

import io
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from datetime import timedelta

import psycopg
import pytest
from conftest import JWT_SECRET, NOW, ROOT, bearer, make_slot, without_search_path
from prometheus_client.parser import text_string_to_metric_families
from pythonjsonlogger.json import JsonFormatter
from test_faults import free_port, http, wait_for

from api import auth, create_app
from api.observability import BackgroundHandler, RequestJsonFormatter, request_id, request_record


def samples(text: str) -> dict[tuple, float]:
    """{(metric sample name, sorted labels): value} of a Prometheus text exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def metrics_app(db, admin):
    application = create_app({"DATABASE_URL": without_search_path(db), "JWT_SECRET": JWT_SECRET,
                              "METRICS": "on"})
    application.testing = True
    yield application
    application.extensions["medbook_db"].close()


def test_metrics_count_requests_latency_pool_and_booking_outcomes(metrics_app, admin, world):
    client = metrics_app.test_client()
    before = samples(client.get("/metrics").get_data(as_text=True))
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    assert client.post("/v1/appointments", json={"slot_id": slot["id"]},
                       headers=bearer(world.patient_user)).status_code == 201
    assert client.post("/v1/appointments", json={"slot_id": slot["id"]},
                       headers=bearer(world.other_patient_user)).status_code == 409
    assert client.get(f"/v1/slots/{slot['id']}", headers=bearer(world.patient_user)).status_code == 200
    other = make_slot(admin, world, NOW + timedelta(days=3))
    keyed = {**bearer(world.patient_user), "Idempotency-Key": "metrics-1"}
    for _ in range(2):  # executed, then replayed
        assert client.post("/v1/appointments", json={"slot_id": other["id"]}, headers=keyed).status_code == 201

    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    after = samples(response.get_data(as_text=True))

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("medbook_http_requests_total", route="/v1/appointments", method="POST", status="201") == 3
    assert delta("medbook_http_requests_total", route="/v1/appointments", method="POST", status="409") == 1
    assert delta("medbook_http_requests_total", route="/v1/slots/<slot_id>", method="GET", status="200") == 1
    assert delta("medbook_http_request_duration_seconds_count", route="/v1/appointments", method="POST") == 4
    assert delta("medbook_appointment_changes_total", route="/v1/appointments", outcome="ok") == 2
    assert delta("medbook_appointment_changes_total", route="/v1/appointments", outcome="replayed") == 1
    assert delta("medbook_appointment_changes_total", route="/v1/appointments",
                 outcome="slot_unavailable") == 1
    assert value(after, "medbook_db_pool_connections", state="size") >= 1


def test_fhir_bookings_are_counted_with_the_rest_ones(metrics_app, admin, world):
    client = metrics_app.test_client()
    before = samples(client.get("/metrics").get_data(as_text=True))
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    body = {"resourceType": "Appointment", "status": "booked", "slot": [{"reference": f"Slot/{slot['id']}"}],
            "participant": [{"actor": {"reference": f"Patient/{world.patient}"}, "status": "accepted"}]}
    headers = {"Content-Type": "application/fhir+json"}
    assert client.post("/fhir/R4/Appointment", json=body, headers={**headers, **bearer(world.patient_user)}) \
        .status_code == 201
    assert client.post("/fhir/R4/Appointment", json=body, headers={**headers, **bearer(world.patient_user)}) \
        .status_code == 409
    after = samples(client.get("/metrics").get_data(as_text=True))
    for outcome in ("ok", "slot_unavailable"):
        assert value(after, "medbook_appointment_changes_total", route="/fhir/R4/Appointment", outcome=outcome) \
            - value(before, "medbook_appointment_changes_total", route="/fhir/R4/Appointment", outcome=outcome) == 1


def test_metrics_are_off_unless_enabled(client):
    assert client.get("/metrics").status_code == 404


def test_request_log_has_the_facts_and_never_a_token_or_body(app, admin, world):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("medbook.request")
    logger.addHandler(handler)
    try:
        slot = make_slot(admin, world, NOW + timedelta(days=2))
        headers = bearer(world.patient_user)
        client = app.test_client()
        assert client.post("/v1/appointments", json={"slot_id": slot["id"]}, headers=headers).status_code == 201
        assert client.get(f"/v1/practitioners/{world.practitioner}/slots?date=2027-03-03&tz=Europe/London",
                          headers=headers).status_code == 200
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["method"], line["route"], line["status"]) for line in lines] == [
        ("POST", "/v1/appointments", 201), ("GET", "/v1/practitioners/<practitioner_id>/slots", 200)]
    for line in lines:
        assert line["user_id"] == world.patient_user
        assert len(line["request_id"]) == 32 and line["duration_ms"] >= 0
    text = stream.getvalue()
    token = headers["Authorization"].split()[1]
    assert token not in text and "slot_id" not in text and "Europe/London" not in text


def test_request_ids_are_uuid4_hex_with_every_random_bit_random(client):
    # As uuid.uuid4().hex: version 4, the RFC 4122 variant, the other 122 bits random.
    ids = [request_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for made in ids:
        parsed = uuid.UUID(hex=made)
        assert parsed.hex == made and parsed.version == 4 and parsed.variant == uuid.RFC_4122
    fixed = (0xC000 << 48) | (0xF000 << 64)
    ones = zeros = 0
    for made in ids:
        ones |= int(made, 16)
        zeros |= ~int(made, 16) & (2**128 - 1)
    assert ones & zeros == (2**128 - 1) & ~fixed  # every other bit seen both ways
    served = client.get("/v1/healthz").headers["X-Request-Id"]
    assert uuid.UUID(hex=served).version == 4 and served not in ids


class WriterStream(io.StringIO):
    """A log stream that remembers which threads wrote to it."""

    def __init__(self) -> None:
        super().__init__()
        self.writers: set[str] = set()

    def write(self, text: str) -> int:
        self.writers.add(threading.current_thread().name)
        return super().write(text)


def json_target(stream) -> logging.StreamHandler:
    """The production handler's target (api.observability.configure_logging) on another stream."""
    target = logging.StreamHandler(stream)
    target.setFormatter(RequestJsonFormatter())
    return target


@pytest.mark.parametrize("user_id", [7, None])
def test_a_request_line_without_a_record_is_the_line_of_its_record(user_id):
    formatter = RequestJsonFormatter()
    plain = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                          rename_fields={"asctime": "time", "levelname": "level"})
    fields = {"request_id": "0" * 32, "method": "POST", "route": "/v1/appointments", "status": 201,
              "duration_ms": 3.25, "user_id": user_id}
    # Within one second (the date is reused), into the next one, and ms at both ends.
    for created in (1_790_000_000.0, 1_790_000_000.5, 1_790_000_000.999, 1_790_000_001.001, 1_700_000_000.25):
        record = request_record(created, fields)
        expected = plain.format(record)
        assert formatter.format_request(created, fields) == expected == formatter.format(record)
        assert json.loads(expected)["user_id"] == user_id


def test_the_request_line_skips_the_log_record_only_where_nothing_else_would_see_it(app, admin, world):
    stream = WriterStream()
    handler = BackgroundHandler(json_target(stream), interval=0.01)
    records: list[logging.LogRecord] = []
    handler.addFilter(lambda record: records.append(record) or True)
    medbook = logging.getLogger("medbook")
    kept = medbook.handlers[:]
    medbook.handlers[:] = [handler]
    try:
        client = app.test_client()
        headers = bearer(world.patient_user)
        assert client.get(f"/v1/practitioners/{world.practitioner}/slots", headers=headers).status_code == 200
        handler.flush()
        # A filter on the handler: it must see a record, so the line goes through logging.
        assert [record.route for record in records] == ["/v1/practitioners/<practitioner_id>/slots"]
        handler.filters.clear()
        assert client.get(f"/v1/practitioners/{world.practitioner}/slots?date=2027-03-03",
                          headers=headers).status_code == 200
        handler.flush()
    finally:
        medbook.handlers[:] = kept
        handler.close()
    assert len(records) == 1  # the second line was queued without a record
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(line["name"], line["message"], line["level"], line["route"], line["status"], line["user_id"])
            for line in lines] == [("medbook.request", "request", "INFO", "/v1/practitioners/<practitioner_id>/slots",
                                    200, world.patient_user)] * 2
    assert all(len(line["request_id"]) == 32 and line["duration_ms"] >= 0 for line in lines)
    assert [sorted(line) for line in lines] == [sorted(lines[0])] * 2
    assert stream.writers == {"medbook-log-writer"}
    assert "2027-03-03" not in stream.getvalue()


def test_request_log_lines_are_written_by_the_writer_thread_with_the_same_facts(app, admin, world):
    direct, queued = io.StringIO(), WriterStream()
    at_once = json_target(direct)
    background = BackgroundHandler(json_target(queued), interval=0.01)
    logger = logging.getLogger("medbook.request")
    logger.addHandler(at_once)
    logger.addHandler(background)
    try:
        slot = make_slot(admin, world, NOW + timedelta(days=2))
        headers = bearer(world.patient_user)
        client = app.test_client()
        assert client.post("/v1/appointments", json={"slot_id": slot["id"]}, headers=headers).status_code == 201
        assert client.get(f"/v1/practitioners/{world.practitioner}/slots?date=2027-03-03&tz=Europe/London",
                          headers=headers).status_code == 200
        background.flush()
    finally:
        logger.removeHandler(at_once)
        logger.removeHandler(background)
        background.close()
    # Line for line what the handler writing in the request's thread wrote.
    assert queued.getvalue() == direct.getvalue()
    assert len(queued.getvalue().splitlines()) == 2
    assert queued.writers == {"medbook-log-writer"}
    token = headers["Authorization"].split()[1]
    assert token not in queued.getvalue() and "slot_id" not in queued.getvalue()


def record(n: object) -> logging.LogRecord:
    """A request record carrying n (formatted by "%(message)s %(n)s")."""
    item = logging.LogRecord("medbook.request", logging.INFO, __file__, 0, "request", (), None)
    item.n = n
    return item


def test_close_writes_every_queued_line_in_order_and_later_lines_at_once():
    stream = io.StringIO()
    target = logging.StreamHandler(stream)
    target.setFormatter(logging.Formatter("%(message)s %(n)s"))
    handler = BackgroundHandler(target, interval=600)  # nothing is written before close()
    for n in range(5000):
        handler.handle(record(n))
    handler.close()
    assert stream.getvalue().splitlines() == [f"request {n}" for n in range(5000)]
    handler.handle(record(5000))
    assert stream.getvalue().splitlines()[-1] == "request 5000"


def _log_in_child(handler: BackgroundHandler) -> None:
    for n in range(100):
        handler.handle(record(f"child {n}"))
    # Ends normally, as a server worker does after its drain: no close() here.


def test_a_forked_worker_writes_its_own_lines_when_it_ends(tmp_path):
    path = tmp_path / "log"
    with open(path, "w") as stream:
        target = logging.StreamHandler(stream)
        target.setFormatter(logging.Formatter("%(message)s %(n)s"))
        handler = BackgroundHandler(target, interval=600)
        try:
            handler.handle(record("parent"))  # the parent's writer runs, and holds its line, when the child forks
            child = multiprocessing.get_context("fork").Process(target=_log_in_child, args=(handler,))
            child.start()
            child.join(30)
            assert child.exitcode == 0
        finally:
            handler.close()
    lines = path.read_text().splitlines()
    assert lines.count("request parent") == 1
    assert [line for line in lines if "child" in line] == [f"request child {n}" for n in range(100)]


def _serve(db: str, tmp_path, **env) -> tuple[subprocess.Popen, str]:
    port = free_port()
    environment = {**os.environ, "DATABASE_URL": without_search_path(db), "MEDBOOK_JWT_SECRET": JWT_SECRET,
                   "MEDBOOK_BIND": f"127.0.0.1:{port}", "MEDBOOK_HOME": str(tmp_path),
                   "MEDBOOK_WORKERS": "2", "MEDBOOK_THREADS": "2", **env}
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen([sys.executable, "-m", "api.cli", "serve"], env=environment, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/v1/healthz", timeout=1) as response:  # noqa: S310
                return response.status == 200
        except OSError:
            return False

    wait_for(healthy, 30, 0.2)
    return server, base


def test_metrics_port_sums_every_server_worker(db, admin, world, tmp_path):
    metrics_port = free_port()
    server, base = _serve(db, tmp_path, MEDBOOK_METRICS_BIND=f"127.0.0.1:{metrics_port}")
    try:
        token = auth.mint(JWT_SECRET, world.patient_user)
        for _ in range(40):
            assert http("GET", f"{base}/v1/practitioners/{world.practitioner}/slots", token)[0] == 200
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as response:
            found = samples(response.read().decode())
        assert value(found, "medbook_http_requests_total", route="/v1/practitioners/<practitioner_id>/slots",
                     method="GET", status="200") == 40
        # The master, which answers no request itself, read them from the workers' files.
        assert list((tmp_path / "metrics").glob("counter_*.db"))
        # Not on the API's port, where MEDBOOK_METRICS is off.
        assert http("GET", f"{base}/metrics", token)[0] == 404
    finally:
        server.terminate()
        server.wait(30)


def test_sigterm_finishes_in_flight_requests_and_serves_no_new_ones(db, admin, world, tmp_path):
    server, base = _serve(db, tmp_path, MEDBOOK_LOCK_TIMEOUT_MS="20000", MEDBOOK_STATEMENT_TIMEOUT_MS="30000",
                          MEDBOOK_GRACEFUL_TIMEOUT="20")
    slot = make_slot(admin, world, NOW + timedelta(days=2))
    token = auth.mint(JWT_SECRET, world.patient_user)
    holder = psycopg.connect(db)
    holder.execute("SELECT 1 FROM booking.availability_slots WHERE id = %s FOR UPDATE", (slot["id"],))
    result: dict = {}

    def book() -> None:
        result["response"] = http("POST", f"{base}/v1/appointments", token, {"slot_id": slot["id"]}, timeout=30)

    booking = threading.Thread(target=book)
    booking.start()
    try:
        wait_for(lambda: admin.execute(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'medbook-api' "
            "AND wait_event_type = 'Lock'").fetchone()["n"] == 1, 15)
        server.send_signal(signal.SIGTERM)

        # A new request is not served: the server stops accepting (the connection waits
        # unanswered and is reset when the last worker exits) or refuses it outright.
        time.sleep(1.5)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{base}/v1/healthz", timeout=2)  # noqa: S310
        assert booking.is_alive(), result
        holder.commit()
        booking.join(30)
        status, _, body = result["response"]
        assert status == 201, body
        assert server.wait(30) == 0
    finally:
        holder.close()
        if server.poll() is None:
            server.kill()
    assert admin.execute("SELECT status FROM booking.availability_slots WHERE id = %s",
                         (slot["id"],)).fetchone()["status"] == "booked"
    # Nothing lingers (the process is gone, so this cannot tell a closed pool from a killed one).
    left = admin.execute("SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'medbook-api'")
    assert left.fetchone()["n"] == 0


def test_sigterm_writes_every_request_line_still_queued(db, admin, world, tmp_path):
    # Lines are written only every 10 minutes here: every one below comes from the drain.
    server, base = _serve(db, tmp_path, MEDBOOK_LOG_FLUSH_MS="600000")
    try:
        token = auth.mint(JWT_SECRET, world.patient_user)
        for _ in range(30):
            assert http("GET", f"{base}/v1/practitioners/{world.practitioner}/slots", token)[0] == 200
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 0
    lines = [json.loads(line) for line in output.decode().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("name") == "medbook.request"]
    # The health checks while the server came up, then the 30 listings.
    assert [line["route"] for line in requests if line["route"] != "/v1/healthz"] == \
        ["/v1/practitioners/<practitioner_id>/slots"] * 30
    assert all(line["status"] == 200 and line["user_id"] == world.patient_user
               for line in requests if line["route"] != "/v1/healthz")
