"""Webhooks, against a real HTTP receiver on 127.0.0.1.

Signatures verify with the standardwebhooks library; events arrive in order per
subscription; 500s, timeouts and refused connections are retried with backoff
until the retry window closes; 410 disables the subscription; private targets
are refused when subscribing and again when delivering; redirects are not
followed; two workers deliver each event exactly once; a worker SIGKILLed in
the middle of a delivery loses nothing. Settings are shrunk (timeouts of a
second, retries in tenths of seconds) so the file runs in seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from conftest import NOW, ROOT, World, make_slot, sqlstate, without_search_path
from standardwebhooks import Webhook

from api import cli, webhook_http
from api.webhook_receiver import Receiver, always
from api.webhooks import Settings, Worker

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwJ9bcdTRzZlk="
FAST = Settings(timeout=1.0, retry_base=0.2, retry_cap=0.5, retry_window=30.0, lease=3.0, poll=0.05,
                allow_private=True)


def subscribe(admin: psycopg.Connection, url: str, types: list[str] | None = None, secret: str = SECRET) -> int:
    return admin.execute("SELECT id FROM booking_api.add_webhook_subscription(%s, %s, %s)",
                         (url, types, secret)).fetchone()["id"]


def slots(admin: psycopg.Connection, world: World, count: int, day: int = 2) -> list[dict]:
    return [make_slot(admin, world, NOW + timedelta(days=day, hours=n)) for n in range(count)]


def event_ids(admin: psycopg.Connection, types: tuple[str, ...] | None = None) -> list[str]:
    rows = admin.execute("SELECT id, type FROM booking.events ORDER BY id").fetchall()
    return [str(row["id"]) for row in rows if types is None or row["type"] in types]


def deliveries(admin: psycopg.Connection) -> list[dict]:
    return admin.execute("SELECT * FROM booking.webhook_deliveries ORDER BY subscription_id, event_id").fetchall()


def attempts(admin: psycopg.Connection) -> list[dict]:
    return admin.execute("SELECT a.*, d.event_id, d.subscription_id FROM booking.webhook_attempts a "
                         "JOIN booking.webhook_deliveries d ON d.id = a.delivery_id ORDER BY a.id").fetchall()


@contextlib.contextmanager
def running(db: str, settings: Settings = FAST, *, workers: int = 1) -> Iterator[list[Worker]]:
    """Delivery workers in threads, stopped (and checked for crashes) at the end of the block."""
    stop = threading.Event()
    started = [Worker(without_search_path(db), settings, name=f"test-worker-{n}") for n in range(workers)]
    crashes: list[BaseException] = []

    def run(worker: Worker) -> None:
        try:
            worker.run(stop)
        except BaseException as exc:
            crashes.append(exc)

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in started]
    for thread in threads:
        thread.start()
    try:
        yield started
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert not crashes, crashes


def eventually(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


# Delivery ----------------------------------------------------------------------------------------

def test_delivers_signed_standard_webhooks_in_event_order(db, admin, world: World):
    with Receiver() as receiver:
        subscribe(admin, receiver.url)
        slot = make_slot(admin, world, NOW + timedelta(days=2))
        appointment = admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot["id"])).fetchone()
        admin.execute("SELECT * FROM cancel_appointment(%s, %s, 'ill')", (world.practitioner_user, appointment["id"]))
        logged = admin.execute("SELECT * FROM booking.events ORDER BY id").fetchall()
        with running(db):
            received = receiver.wait_for(3)
    assert [r.webhook_id for r in received] == [str(e["id"]) for e in logged]
    for request, event in zip(received, logged, strict=True):
        body = Webhook(SECRET).verify(request.body, request.headers)   # the library's own check
        assert body == {"type": event["type"], "timestamp": "2027-03-01T12:00:00+00:00", "data": event["payload"]}
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-signature"].startswith("v1,")
        assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
        with pytest.raises(Exception, match="signature"):
            Webhook("whsec_" + "A" * 43 + "=").verify(request.body, request.headers)
    assert [json.loads(r.body)["type"] for r in received] == ["slot.created", "appointment.booked",
                                                             "appointment.cancelled"]
    assert {d["status"] for d in deliveries(admin)} == {"delivered"}
    assert [(a["status_code"], a["error"]) for a in attempts(admin)] == [(204, None)] * 3


def test_a_subscription_gets_only_its_event_types(db, admin, world: World):
    with Receiver() as receiver:
        subscribe(admin, receiver.url, ["appointment.booked"])
        for slot in slots(admin, world, 2):
            admin.execute("SELECT * FROM book_slot(%s, %s)", (world.patient_user, slot["id"]))
        with running(db):
            received = receiver.wait_for(2)
            time.sleep(0.3)
    assert [r.webhook_id for r in receiver.received] == event_ids(admin, ("appointment.booked",))
    assert {json.loads(r.body)["type"] for r in received} == {"appointment.booked"}


def test_a_new_subscription_does_not_get_the_history(db, admin, world: World):
    slots(admin, world, 2)
    with Receiver() as receiver:
        subscribe(admin, receiver.url)
        new = make_slot(admin, world, NOW + timedelta(days=5))
        with running(db):
            receiver.wait_for(1)
            time.sleep(0.3)
    assert [json.loads(r.body)["data"]["id"] for r in receiver.received] == [new["id"]]


# Retries -------------------------------------------------------------------------------------------

def failing_first(times: int, status: int = 500, delay: float = 0.0):
    """A responder that fails each webhook id `times` times (status, or a delay past the timeout), then 204."""
    seen: Counter = Counter()
    lock = threading.Lock()

    def respond(request):
        with lock:
            seen[request.webhook_id] += 1
            failing = seen[request.webhook_id] <= times
        return (status, delay) if failing else (204, 0.0)
    return respond


def test_500s_are_retried_with_backoff_keeping_the_order(db, admin, world: World):
    with Receiver(failing_first(2)) as receiver:
        subscribe(admin, receiver.url)
        slots(admin, world, 3)
        with running(db):
            receiver.wait_for(9)
            eventually(lambda: {d["status"] for d in deliveries(admin)} == {"delivered"})
    ids = event_ids(admin)
    # Each event: 500, 500, then 204, and no event before the previous one succeeded.
    assert [r.webhook_id for r in receiver.received] == [i for i in ids for _ in range(3)]
    tried = attempts(admin)
    assert [a["status_code"] for a in tried] == [500, 500, 204] * 3
    assert {d["attempts"] for d in deliveries(admin)} == {3}
    first = [r.at for r in receiver.received[:3]]
    assert first[1] - first[0] >= 0.2 * 0.5 - 0.02     # backoff: base 0.2 s times jitter in [0.5, 1.5)
    assert first[2] - first[1] >= 0.5 * 0.5 - 0.02     # capped at 0.5 s


def test_timeouts_and_refused_connections_are_retried(db, admin, world: World):
    with Receiver(failing_first(1, delay=1.5)) as receiver:
        subscribe(admin, receiver.url)
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            refusing_url = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
        refusing = subscribe(admin, refusing_url)
        make_slot(admin, world, NOW + timedelta(days=2))
        with running(db):
            receiver.wait_for(2)
            eventually(lambda: len([a for a in attempts(admin) if a["subscription_id"] == refusing]) >= 2)
            eventually(lambda: any(d["status"] == "delivered" for d in deliveries(admin)))
    tried = attempts(admin)
    timeouts = [a for a in tried if a["subscription_id"] != refusing]
    assert (timeouts[0]["status_code"], timeouts[0]["error"]) == (None, "timeout after 1 s")
    assert 900 <= timeouts[0]["duration_ms"] < 1400
    assert timeouts[1]["status_code"] == 204
    refused = [a for a in tried if a["subscription_id"] == refusing]
    assert {(a["status_code"], a["error"]) for a in refused} == {(None, "connection refused")}
    still = [d for d in deliveries(admin) if d["subscription_id"] == refusing]
    assert [d["status"] for d in still] == ["pending"] and still[0]["attempts"] >= 2


def test_after_the_retry_window_a_delivery_fails_visibly_and_the_next_goes_on(db, admin, world: World):
    first_fails = {"id": None}

    def respond(request):
        first_fails["id"] = first_fails["id"] or request.webhook_id
        return (503, 0.0) if request.webhook_id == first_fails["id"] else (200, 0.0)

    settings = Settings(**{**FAST.__dict__, "retry_window": 1.0})
    with Receiver(respond) as receiver:
        subscription = subscribe(admin, receiver.url)
        slots(admin, world, 2)
        with running(db, settings):
            eventually(lambda: [d["status"] for d in deliveries(admin)] == ["failed", "delivered"])
    failed, delivered = deliveries(admin)
    assert failed["attempts"] >= 3 and failed["last_status_code"] == 503
    assert failed["last_attempt_at"] - failed["first_attempt_at"] >= timedelta(seconds=1)
    listed = admin.execute("SELECT * FROM list_webhook_subscriptions()").fetchone()
    assert (listed["id"], listed["pending"], listed["delivered"], listed["failed"]) == (subscription, 0, 1, 1)
    # The second event went out only after the first had failed for good.
    ids = [r.webhook_id for r in receiver.received]
    assert ids[-1] == str(delivered["event_id"]) and ids.count(ids[-1]) == 1


def test_backoff_schedule_in_sql(admin, world: World):
    """Default schedule: first retry 5-15 s after a failure, growing x4, capped, failed after the window."""
    subscribe(admin, "https://example.com/hook")
    make_slot(admin, world, NOW + timedelta(days=2))
    admin.execute("SELECT fan_out_webhook_events(10)")
    delays = []
    for _ in range(4):
        claimed = admin.execute("UPDATE booking.webhook_deliveries SET next_attempt_at = now() "
                                "RETURNING id").fetchone()
        row = admin.execute("SELECT * FROM claim_webhook_deliveries(1, 1, '1 minute')").fetchone()
        assert row["delivery_id"] == claimed["id"]
        outcome = admin.execute("SELECT record_webhook_attempt(%s, %s, 't', clock_timestamp(), 5, 500, NULL) AS o",
                                (row["delivery_id"], row["lease_token"])).fetchone()["o"]
        assert outcome == "retry"
        delays.append(admin.execute("SELECT extract(epoch FROM next_attempt_at - last_attempt_at) AS s "
                                    "FROM booking.webhook_deliveries").fetchone()["s"])
    for n, delay in enumerate(delays):
        assert 10 * 4**n * 0.5 <= float(delay) < 10 * 4**n * 1.5 + 1, delays
    admin.execute("UPDATE booking.webhook_deliveries SET next_attempt_at = now(), "
                  "first_attempt_at = now() - interval '24 hours'")
    row = admin.execute("SELECT * FROM claim_webhook_deliveries(1, 1, '1 minute')").fetchone()
    assert admin.execute("SELECT record_webhook_attempt(%s, %s, 't', clock_timestamp(), 5, NULL, 'x') AS o",
                         (row["delivery_id"], row["lease_token"])).fetchone()["o"] == "failed"
    assert deliveries(admin)[0]["status"] == "failed"


# 410, SSRF, redirects, response size --------------------------------------------------------------------

def test_410_disables_the_subscription(db, admin, world: World):
    with Receiver(always(410)) as receiver:
        subscription = subscribe(admin, receiver.url)
        slots(admin, world, 2)
        with running(db):
            eventually(lambda: not admin.execute("SELECT enabled FROM booking.webhook_subscriptions").fetchone()
                       ["enabled"])
            time.sleep(0.3)
            make_slot(admin, world, NOW + timedelta(days=4))  # not queued for a disabled subscription
            time.sleep(0.3)
    assert len(receiver.received) == 1
    row = admin.execute("SELECT * FROM booking.webhook_subscriptions").fetchone()
    assert row["enabled"] is False and "410" in row["disabled_reason"]
    assert [d["status"] for d in deliveries(admin)] == ["failed", "pending"]
    admin.execute("SELECT set_webhook_subscription_enabled(%s, true)", (subscription,))
    assert admin.execute("SELECT disabled_reason FROM booking.webhook_subscriptions").fetchone() == \
        {"disabled_reason": None}


@pytest.mark.parametrize("address", ["127.0.0.1", "127.9.9.9", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1",
                                     "169.254.169.254", "fe80::1", "fd00:ec2::254", "100.100.100.200", "0.0.0.0",  # noqa: S104
                                     "::ffff:127.0.0.1", "::ffff:169.254.169.254", "224.0.0.1", "240.0.0.1"])
def test_private_loopback_link_local_and_metadata_addresses_are_refused(address):
    assert webhook_http.address_refusal(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address):
    assert webhook_http.address_refusal(address) is None


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/hook", "http://localhost/hook", "http://[::1]/",
                                 "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/",
                                 "http://[::ffff:7f00:1]/", "ftp://example.com/", "http://user:pw@example.com/",
                                 "file:///etc/passwd", "http://no-such-host.invalid/"])
def test_subscribing_refuses_private_or_unusable_targets(db, monkeypatch, capsys, url):
    monkeypatch.setenv("DATABASE_URL", db)
    monkeypatch.delenv("MEDBOOK_WEBHOOK_ALLOW_PRIVATE", raising=False)
    assert cli.main(["webhooks", "add", url]) == 2
    assert "refused" in capsys.readouterr().err
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM booking.webhook_subscriptions").fetchone()[0] == 0


def test_delivery_rechecks_the_target_and_refuses_a_private_one(db, admin, world: World):
    """The subscription was added directly in SQL (or DNS changed since): the worker refuses at delivery time."""
    with Receiver() as receiver:
        subscribe(admin, receiver.url)
        make_slot(admin, world, NOW + timedelta(days=2))
        with running(db, Settings(**{**FAST.__dict__, "allow_private": False})):
            eventually(lambda: len(attempts(admin)) >= 2)
    assert receiver.received == []
    tried = attempts(admin)
    assert {a["status_code"] for a in tried} == {None}
    assert all(a["error"] == "refused: 127.0.0.1 resolves to 127.0.0.1 is a loopback address" for a in tried)


def test_redirects_are_not_followed(db, admin, world: World):
    with Receiver(failing_first(1, status=307)) as receiver:
        subscribe(admin, receiver.url)
        make_slot(admin, world, NOW + timedelta(days=2))
        with running(db):
            receiver.wait_for(2)
            eventually(lambda: deliveries(admin)[0]["status"] == "delivered")
    assert [(a["status_code"], a["error"]) for a in attempts(admin)] == [(307, "redirect not followed"), (204, None)]
    assert {r.path for r in receiver.received} == {"/hook"}


def test_response_reading_is_capped_and_bounded_in_time():
    """A target that streams an endless body: the attempt ends at the cap (200) or at the deadline."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
            with contextlib.suppress(OSError):
                while not stop.is_set():
                    conn.sendall(b"x" * 65536)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        outcome = webhook_http.post(f"http://127.0.0.1:{server.getsockname()[1]}/", b"{}", {}, timeout=2.0,
                                    allow_private=True, max_response_bytes=1024)
        assert outcome.status == 200 and outcome.error is None
        assert time.monotonic() - started < 2.0
    finally:
        stop.set()
        server.close()


# Several workers, killed workers ---------------------------------------------------------------------------

def test_two_workers_deliver_each_event_exactly_once_in_order(db, admin, world: World):
    receivers = [Receiver(lambda _r: (200, 0.002)) for _ in range(3)]
    with contextlib.ExitStack() as stack:
        for receiver in receivers:
            stack.enter_context(receiver)
            subscribe(admin, receiver.url, ["slot.created"])
        slots(admin, world, 40)
        settings = Settings(**{**FAST.__dict__, "max_subscriptions": 1, "batch": 5})
        with running(db, settings, workers=2):
            for receiver in receivers:
                receiver.wait_for(40)
            time.sleep(0.3)
    ids = event_ids(admin, ("slot.created",))
    for receiver in receivers:
        assert [r.webhook_id for r in receiver.received] == ids      # each once, in order
    tried = attempts(admin)
    assert len(tried) == 120 and {a["status_code"] for a in tried} == {200}
    assert {a["worker"] for a in tried} == {"test-worker-0", "test-worker-1"}  # both took part


def test_claims_never_overlap(admin, world: World):
    """Two claims at once: a subscription's deliveries go to one claimer; a lease that ran out can be taken over."""
    subscribe(admin, "https://example.com/a")
    slots(admin, world, 3)
    admin.execute("SELECT fan_out_webhook_events(100)")
    first = admin.execute("SELECT * FROM claim_webhook_deliveries(5, 10, '1 minute')").fetchall()
    assert len(first) == 3
    assert admin.execute("SELECT * FROM claim_webhook_deliveries(5, 10, '1 minute')").fetchall() == []
    # A worker that recorded with a lease it no longer holds changes nothing.
    assert admin.execute("SELECT record_webhook_attempt(%s, gen_random_uuid(), 't', now(), 1, 200, NULL) AS o",
                         (first[0]["delivery_id"],)).fetchone()["o"] == "lease_lost"
    admin.execute("UPDATE booking.webhook_deliveries SET leased_until = now() - interval '1 second'")
    again = admin.execute("SELECT * FROM claim_webhook_deliveries(5, 10, '1 minute')").fetchall()
    assert [r["delivery_id"] for r in again] == [r["delivery_id"] for r in first]
    assert admin.execute("SELECT record_webhook_attempt(%s, %s, 't', now(), 1, 200, NULL) AS o",
                         (first[0]["delivery_id"], first[0]["lease_token"])).fetchone()["o"] == "lease_lost"
    assert admin.execute("SELECT release_webhook_deliveries(%s) AS n", (again[0]["lease_token"],)).fetchone() == \
        {"n": 3}
    with sqlstate("MB400"):
        admin.execute("SELECT * FROM claim_webhook_deliveries(0, 10, '1 minute')")


def worker_process(db: str, lease: float) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": without_search_path(db), "MEDBOOK_WEBHOOK_ALLOW_PRIVATE": "1",
           "MEDBOOK_WEBHOOK_TIMEOUT_SECONDS": "5", "MEDBOOK_WEBHOOK_LEASE_SECONDS": str(lease),
           "MEDBOOK_WEBHOOK_POLL_SECONDS": "0.05", "MEDBOOK_WEBHOOK_RETRY_BASE_SECONDS": "0.2"}
    return subprocess.Popen([sys.executable, "-m", "api.cli", "webhooks", "run"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_a_worker_killed_mid_delivery_loses_nothing(db, admin, world: World):
    hang_once = {"done": False}
    in_flight = threading.Event()

    def respond(request):
        if not hang_once["done"] and json.loads(request.body)["data"]["id"] == created[2]["id"]:
            hang_once["done"] = True
            in_flight.set()
            return 200, 4.0     # the worker is killed while it waits for this answer
        return 200, 0.0

    with Receiver(respond) as receiver:
        subscribe(admin, receiver.url)
        created = slots(admin, world, 6)
        first = worker_process(db, lease=10.0)
        try:
            assert in_flight.wait(30), first.stderr.read1().decode() if first.poll() is not None else "no request"
            first.send_signal(signal.SIGKILL)
            assert first.wait(10) == -signal.SIGKILL
        finally:
            if first.poll() is None:
                first.kill()
        state = deliveries(admin)
        assert [d["status"] for d in state] == ["delivered", "delivered", "pending", "pending", "pending", "pending"]
        assert state[2]["leased_until"] is not None          # still leased by the dead worker
        started = time.monotonic()
        with running(db, Settings(**{**FAST.__dict__, "lease": 10.0})):
            eventually(lambda: {d["status"] for d in deliveries(admin)} == {"delivered"}, timeout=30)
        waited = time.monotonic() - started
    ids = event_ids(admin)
    received = [r.webhook_id for r in receiver.received]
    assert received == ids[:3] + ids[2:]                     # the cut-off one again (at least once), then the rest
    assert {d["status"] for d in deliveries(admin)} == {"delivered"}
    assert waited > 3.0                                      # the survivor waited for the dead worker's lease


# The command line -----------------------------------------------------------------------------------

def test_cli_add_list_disable_enable_remove(db, admin, monkeypatch, capsys):
    monkeypatch.setenv("DATABASE_URL", db)
    monkeypatch.setenv("MEDBOOK_WEBHOOK_ALLOW_PRIVATE", "1")
    assert cli.main(["webhooks", "add", "http://127.0.0.1:9000/hook", "--events",
                     "appointment.booked,appointment.cancelled"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert set(added) == {"id", "url", "events", "secret"}
    assert added["url"] == "http://127.0.0.1:9000/hook"
    assert added["events"] == ["appointment.booked", "appointment.cancelled"]
    assert added["secret"].startswith("whsec_")
    Webhook(added["secret"])                                  # a usable Standard Webhooks secret
    assert cli.main(["webhooks", "add", "https://93.184.215.14/all", "--secret", SECRET]) == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["events"], second["secret"]) == (None, SECRET)

    assert cli.main(["webhooks", "list"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [row["id"] for row in listed] == [added["id"], second["id"]]
    assert all("secret" not in row for row in listed)
    assert cli.main(["webhooks", "disable", str(added["id"])]) == 0
    assert cli.main(["webhooks", "enable", str(second["id"])]) == 0
    assert cli.main(["webhooks", "remove", str(second["id"])]) == 0
    capsys.readouterr()
    assert admin.execute("SELECT id, enabled, disabled_reason FROM booking.webhook_subscriptions").fetchall() == \
        [{"id": added["id"], "enabled": False, "disabled_reason": "disabled by the owner"}]

    for argv, code in ((["add", "http://127.0.0.1:9000/", "--events", "appointment.exploded"], "MBE01"),
                       (["add", "http://127.0.0.1:9000/", "--secret", "whsec_short"], "MBE03"),
                       (["remove", "999"], "MB404")):
        assert cli.main(["webhooks", *argv]) == 2
        assert code in capsys.readouterr().err


def test_subscription_rules_in_sql(admin):
    for url in ("ftp://example.com/", "http://user@example.com/", "https://exa mple.com/", "http://", "example.com"):
        with sqlstate("MBE02"):
            admin.execute("SELECT * FROM add_webhook_subscription(%s)", (url,))
    for types in ([], [None], ["slot.created", "nope"]):
        with sqlstate("MBE01"):
            admin.execute("SELECT * FROM add_webhook_subscription('https://example.com/', %s)", (types,))
    for secret in ("whsec_", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_!!!!" + "A" * 40, "whsec_" + "A" * 200):
        with sqlstate("MBE03"):
            admin.execute("SELECT * FROM add_webhook_subscription('https://example.com/', NULL, %s)", (secret,))
    with sqlstate("MB404"):
        admin.execute("SELECT set_webhook_subscription_enabled(12345, false)")
