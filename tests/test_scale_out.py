"""Two API instances (separate server processes, separate pools) against one database.

Concurrent bookings spread over both instances keep the invariants (one winner
per slot, check_booking_invariants() empty), and every step of a flow may be
served by either instance: nothing one instance needs is kept in another's
memory (docs/SCALING.md).
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
import requests
from conftest import JWT_SECRET, NOW, ROOT, add_patient, bearer, invariant_violations, iso, make_slot

from api import cli

INSTANCES = 2
PATIENTS = 12
SLOTS = 15


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def instances(api_route: dict, tmp_path) -> Iterator[list[str]]:
    """Base URLs of two API servers (the production command line), each with its own workers and pools."""
    processes, bases = [], []
    env = {**os.environ, "DATABASE_URL": api_route["url"], "MEDBOOK_JWT_SECRET": JWT_SECRET,
           "MEDBOOK_POOL_MAX_SIZE": "4", "MEDBOOK_WORKERS": "2", "MEDBOOK_THREADS": "4",
           **{f"MEDBOOK_{key}": str(value) for key, value in api_route["config"].items()}}
    try:
        for index in range(INSTANCES):
            port = _free_port()
            log = (tmp_path / f"instance{index}.log").open("wb")
            processes.append(subprocess.Popen(cli.server_argv(f"127.0.0.1:{port}"),  # noqa: S603
                                              env=env, cwd=ROOT, stdout=log, stderr=log))
            log.close()
            bases.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        for base in bases:
            while True:
                try:
                    if requests.get(f"{base}/v1/healthz", timeout=2).status_code == 200:
                        break
                except (requests.ConnectionError, requests.Timeout):  # starting, or a loaded machine
                    pass
                assert time.monotonic() < deadline, "an instance did not become healthy"
                time.sleep(0.2)
        yield bases
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)


def test_two_instances_one_winner_per_slot(instances, admin, world):
    patients = [add_patient(admin)[0] for _ in range(PATIENTS)]
    slots = [make_slot(admin, world, NOW + timedelta(days=1, hours=h))["id"] for h in range(SLOTS)]
    barrier = threading.Barrier(PATIENTS)
    results: dict[int, list[tuple[int, int, str]]] = {slot: [] for slot in slots}
    lock = threading.Lock()

    def contend(index: int) -> None:
        session = requests.Session()
        headers = bearer(patients[index])
        for number, slot in enumerate(slots):
            base = instances[(index + number) % INSTANCES]  # both instances race for every slot
            barrier.wait(timeout=60)
            response = session.post(f"{base}/v1/appointments", json={"slot_id": slot}, headers=headers, timeout=30)
            code = response.json().get("code", "") if response.status_code != 201 else ""
            with lock:
                results[slot].append((index % INSTANCES, response.status_code, code))

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(PATIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)

    winners_by_instance = [0] * INSTANCES
    for slot, outcomes in results.items():
        assert len(outcomes) == PATIENTS
        won = [o for o in outcomes if o[1] == 201]
        assert len(won) == 1, (slot, outcomes)
        assert {(status, code) for _, status, code in outcomes if status != 201} == {(409, "slot_unavailable")}
        winners_by_instance[(won[0][0] + slots.index(slot)) % INSTANCES] += 1
    assert admin.execute("SELECT count(*) AS n FROM booking.appointments").fetchone()["n"] == SLOTS
    assert invariant_violations(admin) == []
    # Both instances won some: the race really was between processes.
    assert all(winners_by_instance), winners_by_instance


def test_every_step_may_be_served_by_either_instance(instances, admin, world):
    """Create on A, read on B, book on B, see it on A, cancel on A, rebook on B, settings on A read on B."""
    a, b = instances
    practitioner, patient = bearer(world.practitioner_user), bearer(world.patient_user)
    start = NOW + timedelta(days=3)
    created = requests.post(f"{a}/v1/practitioners/{world.practitioner}/slots", headers=practitioner, timeout=10,
                            json={"start_time": iso(start), "end_time": iso(start + timedelta(minutes=30))})
    assert created.status_code == 201
    slot = created.json()["id"]
    assert requests.get(f"{b}/v1/slots/{slot}", headers=patient, timeout=10).json()["status"] == "available"
    booked = requests.post(f"{b}/v1/appointments", json={"slot_id": slot}, headers=patient, timeout=10)
    assert booked.status_code == 201
    appointment = booked.json()["id"]
    assert requests.get(f"{a}/v1/slots/{slot}", headers=patient, timeout=10).json()["status"] == "booked"
    assert [x["id"] for x in requests.get(f"{a}/v1/patients/{world.patient}/appointments", headers=patient,
                                          timeout=10).json()["data"]] == [appointment]
    cancelled = requests.post(f"{a}/v1/appointments/{appointment}/cancel", json={}, headers=practitioner, timeout=10)
    assert cancelled.status_code == 200
    assert requests.get(f"{b}/v1/appointments/{appointment}", headers=patient,
                        timeout=10).json()["status"] == "cancelled"
    assert requests.post(f"{b}/v1/appointments", json={"slot_id": slot}, headers=bearer(world.other_patient_user),
                         timeout=10).status_code == 201
    changed = requests.patch(f"{a}/v1/practitioners/{world.practitioner}/settings", headers=practitioner,
                             json={"time_zone": "Europe/London"}, timeout=10)
    assert changed.status_code == 200
    assert requests.get(f"{b}/v1/practitioners/{world.practitioner}/settings", headers=patient,
                        timeout=10).json()["time_zone"] == "Europe/London"
    assert invariant_violations(admin) == []
