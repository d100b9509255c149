"""Operators can see and stop the service: request logs, Prometheus metrics, a draining SIGTERM."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import timedelta

import psycopg
import pytest
from conftest import JWT_SECRET, NOW, ROOT, bearer, make_slot, without_search_path
from prometheus_client.parser import text_string_to_metric_families
from pythonjsonlogger.json import JsonFormatter
from test_faults import free_port, http, wait_for

from api import auth, create_app


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
