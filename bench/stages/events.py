"""Events stages: what the event log costs a booking, and one webhook worker's delivery throughput.

1. book_slot as shipped (event trigger and NOTIFY on commit), with the event
   trigger but the NOTIFY switched off (booking.event_log_settings, the
   owner's switch), and without the trigger (ALTER TABLE ... DISABLE TRIGGER
   appointments_record_event, as the superuser, in this throw-away bench
   database only), interleaved at one client count, each triple back to back.
   The slot trigger does not fire on a booking (it fires on UPDATE OF
   start_time, end_time), so this one trigger is the whole cost of the log.
2. One `medbook webhooks run` process (default settings) delivering to a local
   receiver on 127.0.0.1 that answers 204 at once: a warm-up event first, then
   N events committed in one transaction; deliveries per second from the commit
   until the last is recorded delivered.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import psycopg

from api.webhook_receiver import Receiver

from .common import CLOCK, ROOT, Sizes, log, median
from .data import max_booked_slot
from .direct import counted_run

TRIGGER = "ALTER TABLE booking.appointments {} TRIGGER appointments_record_event"


NOTIFY = "UPDATE booking.event_log_settings SET notify_on_commit = %s"
VARIANTS = ("with_events", "notify_off", "without_events")


def _switch(conninfo: str, variant: str) -> None:
    """Sets up one variant; "with_events" is the database as shipped."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(TRIGGER.format("DISABLE" if variant == "without_events" else "ENABLE"))
        conn.execute(NOTIFY, (variant == "with_events",))


def event_log_cost(conninfo: str, sizes: Sizes, cursor: int, limit: int) -> tuple[dict[str, Any], int]:
    """book_slot tps as shipped, without the NOTIFY on commit, and without the event trigger."""
    clients = 8 if 8 in sizes.clients else max(sizes.clients)
    runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    for rep in range(sizes.reps):
        for variant in VARIANTS:
            _switch(conninfo, variant)
            try:
                result = counted_run(conninfo, sizes, "book_slot.sql", "booked", clients=clients, offset=cursor)
            finally:
                _switch(conninfo, "with_events")
            runs[variant].append(result)
            cursor = max_booked_slot(conninfo, limit)
            if cursor >= limit:
                raise SystemExit("bench: the booking slots ran out in the event-log stage")
        log(f"rep {rep + 1}/{sizes.reps}, {clients} clients: book_slot with events "
            f"{runs['with_events'][-1]['tps']:8.0f} tps, NOTIFY off {runs['notify_off'][-1]['tps']:8.0f} tps, "
            f"without events {runs['without_events'][-1]['tps']:8.0f} tps")

    def ratio(a: str, b: str) -> float:
        return median([x["tps"] / y["tps"] for x, y in zip(runs[a], runs[b], strict=True)])

    return {"clients": clients,
            "with_events_tps": median([r["tps"] for r in runs["with_events"]]),
            "notify_off_tps": median([r["tps"] for r in runs["notify_off"]]),
            "without_events_tps": median([r["tps"] for r in runs["without_events"]]),
            "with_events_latency_ms": median([r["latency_ms"] for r in runs["with_events"]]),
            "notify_off_latency_ms": median([r["latency_ms"] for r in runs["notify_off"]]),
            "without_events_latency_ms": median([r["latency_ms"] for r in runs["without_events"]]),
            "with_over_without": ratio("with_events", "without_events"),
            "with_over_notify_off": ratio("with_events", "notify_off"),
            "notify_off_over_without": ratio("notify_off", "without_events"), "runs": runs}, cursor


def _delivered(conn: psycopg.Connection, subscription: int) -> int:
    return conn.execute("SELECT count(*) FROM booking.webhook_deliveries WHERE subscription_id = %s "
                        "AND status = 'delivered'", (subscription,)).fetchone()[0]


def _wait_delivered(conn: psycopg.Connection, subscription: int, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _delivered(conn, subscription) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: webhooks: {_delivered(conn, subscription)} of {count} delivered "
                             f"in {timeout:.0f} s")
        time.sleep(0.02)


def webhook_throughput(conninfo: str, sizes: Sizes) -> dict[str, Any]:
    """Deliveries per second of one worker process to a local receiver."""
    events = sizes.webhook_events
    with Receiver() as receiver, psycopg.connect(conninfo, autocommit=True) as conn:
        subscription = conn.execute("SELECT id FROM booking_api.add_webhook_subscription(%s, ARRAY['slot.created'])",
                                    (receiver.url,)).fetchone()[0]
        env = {**os.environ, "DATABASE_URL": conninfo, "MEDBOOK_WEBHOOK_ALLOW_PRIVATE": "1",
               "MEDBOOK_LOG_FORMAT": "text"}
        worker = subprocess.Popen([sys.executable, "-m", "api.cli", "webhooks", "run"], env=env,
                                  cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # Far beyond the bench's days, one practitioner, 10 minutes apart: no overlap, no booking.
            first = CLOCK + timedelta(days=400)
            conn.execute("INSERT INTO booking.availability_slots (practitioner_id, start_time, end_time) "
                         "VALUES (1, %s, %s)", (first, first + timedelta(minutes=5)))
            _wait_delivered(conn, subscription, 1, 60)          # the worker is up and idle
            started = time.monotonic()
            conn.execute("INSERT INTO booking.availability_slots (practitioner_id, start_time, end_time) "
                         "SELECT 1, %s + g * interval '10 minutes', %s + g * interval '10 minutes' + "
                         "interval '5 minutes' FROM generate_series(1, %s) g", (first, first, events))
            _wait_delivered(conn, subscription, events + 1, 600)
            elapsed = time.monotonic() - started
            durations = conn.execute(
                "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY a.duration_ms) "
                "FROM booking.webhook_attempts a JOIN booking.webhook_deliveries d ON d.id = a.delivery_id "
                "WHERE d.subscription_id = %s", (subscription,)).fetchone()[0]
            attempts = conn.execute(
                "SELECT count(*) FROM booking.webhook_attempts a JOIN booking.webhook_deliveries d "
                "ON d.id = a.delivery_id WHERE d.subscription_id = %s", (subscription,)).fetchone()[0]
        finally:
            worker.terminate()
            worker.wait(30)
    received = len(receiver.received)
    result = {"events": events, "seconds": round(elapsed, 3), "deliveries_per_second": events / elapsed,
              "attempt_p50_ms": durations[0], "attempt_p99_ms": durations[1], "attempts": attempts,
              "received": received, "duplicates": received - len({r.webhook_id for r in receiver.received})}
    log(f"webhooks: {events} events delivered by one worker in {elapsed:.2f} s "
        f"({result['deliveries_per_second']:.0f}/s), attempt p50 {durations[0]:.0f} ms")
    return result
