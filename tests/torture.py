"""Concurrency torture: many processes hammer a few hot slots for a fixed time.

Each worker process has its own connection as medbook_api and, in a random
mix, books, cancels (as patient or practitioner), reschedules, rebooks, moves,
deletes and re-creates slots of one practitioner inside a narrow window, creates
slots there in bulk, publishes the weekly rule that describes the window, takes
and ends time off over parts of it and deletes its whole day, books through
perform_idempotently() with keys shared by all workers, and records completed or
no-show for a block of appointments that have started, so every operation
contends with every other on the same rows, the same keys and the same exclusion
constraint. Afterwards:

* every error a worker saw is one the operation documents (see EXPECTED);
  anything else -- a deadlock, a serialization failure, a unique or exclusion
  violation leaking out, a lock or statement timeout -- is counted as unexpected;
* the books add up: appointments = successful bookings (plain, keyed and
  rescheduled), cancelled appointments = successful cancellations and
  reschedules, attended = successful attendance records, history rows = all of
  them, slots = created (one by one, in bulk, by publishing) - deleted (one by
  one, by time off, by range), idempotency keys = keyed requests executed;
* booking_api.check_booking_invariants() returns nothing;
* the server counted no deadlocks (pg_stat_database) and its log, when this
  process can read it, has no "deadlock detected" or crash lines.

The suite runs it briefly (tests/test_torture.py). The long run:

    .venv/bin/python -m tests.torture --seconds 600 [--workers 8] [--database-url URL]

Without --database-url it starts a private PostgreSQL in a temporary directory.
"""

from __future__ import annotations

import argparse
import atexit
import multiprocessing
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
WINDOW_START = NOW + timedelta(days=3)
GRID = timedelta(minutes=30)
WINDOW_STEPS = 8  # the hot window: eight half-hour positions, four hours
HOT_SLOTS = 5
PATIENTS = 8
# Appointments that have started when the run begins, for attendance to be recorded on.
STARTED = 60
KEYS = 10  # the pool of idempotency keys the workers share


# Operation -> SQLSTATEs it may legitimately end with under contention.
EXPECTED = {
    "book": {"MBS01", "MB404"},          # someone else won; the slot was deleted
    "cancel": {"MBA01"},                 # cancelled concurrently
    "update": {"MBS02", "MBS03", "MB404"},
    "delete": {"MBS03", "MB404"},
    "create": {"MBS02"},
    "bulk": {"MBS02"},                   # overlaps a slot created meanwhile
    "publish": set(),                    # skips what it cannot create, never an error
    "time_off": set(),
    "end_time_off": {"MB404"},           # removed concurrently
    "range_delete": set(),
    "reschedule": {"MBA01", "MBS01", "MB404"},  # moved or cancelled concurrently; target taken or deleted
    "attend": {"MBA01"},                        # recorded concurrently
    # Keyed bookings: refusals come back as stored outcomes; these two are raised.
    "keyed": {"MBI01", "MBI02"},                # the key was used for another slot; or is in use right now
}
KEYED_REFUSALS = {"MBS01", "MB404"}
# Operations and their weights: bookings and cancellations race everything else.
OPERATIONS = {"book": 10, "cancel": 6, "update": 4, "delete": 2, "create": 2, "bulk": 2, "publish": 2,
              "time_off": 2, "end_time_off": 2, "range_delete": 1,
              "reschedule": 4, "attend": 1, "keyed": 4}
LOG_ALARMS = ("deadlock detected", "PANIC", "was terminated by signal", "server process (PID")


@dataclass
class People:
    practitioner_user: int
    practitioner: int
    patient_users: list[int]


@dataclass
class Result:
    counts: Counter = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)


def setup(conninfo: str) -> People:
    """Freezes the clock, adds one practitioner, patients and the hot slots."""
    with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as conn:
        conn.execute("SELECT booking.set_booking_clock(%s)", (NOW,))

        def user(role: str) -> int:
            tag = uuid.uuid4().hex[:10]
            return conn.execute("INSERT INTO users (email, name, role) VALUES (%s, %s, %s) RETURNING id",
                                (f"{tag}@example.test", f"Torture {tag}", role)).fetchone()["id"]

        practitioner_user = user("practitioner")
        practitioner = conn.execute("INSERT INTO practitioners (user_id, specialty) VALUES (%s, 'GP') "
                                    "RETURNING id", (practitioner_user,)).fetchone()["id"]
        patient_users = []
        for _ in range(PATIENTS):
            patient_user = user("patient")
            conn.execute("INSERT INTO booking.patients (user_id) VALUES (%s)", (patient_user,))
            patient_users.append(patient_user)
        for i in range(HOT_SLOTS):
            start = WINDOW_START + i * GRID
            conn.execute("SELECT booking_api.create_slot(%s, %s, %s, %s)",
                         (practitioner_user, practitioner, start, start + GRID))
        # The weekly rule that describes the hot window (the practitioner keeps UTC dates).
        conn.execute("SELECT * FROM booking_api.set_schedule(%s, %s, %s)",
                     (practitioner_user, practitioner, Jsonb([{
                         "weekday": WINDOW_START.isoweekday(), "start": WINDOW_START.strftime("%H:%M"),
                         "end": (WINDOW_START + WINDOW_STEPS * GRID).strftime("%H:%M"), "slot_minutes": 30}])))
        # Booked a day ago, started by now.
        conn.execute("SELECT booking.set_booking_clock(%s)", (NOW - timedelta(days=1),))
        for i in range(STARTED):
            start = NOW - timedelta(hours=20) + i * timedelta(minutes=15)
            slot = conn.execute("SELECT id FROM booking_api.create_slot(%s, %s, %s, %s)",
                                (practitioner_user, practitioner, start, start + timedelta(minutes=15))).fetchone()
            conn.execute("SELECT booking_api.book_slot(%s, %s)", (patient_users[i % PATIENTS], slot["id"]))
        conn.execute("SELECT booking.set_booking_clock(%s)", (NOW,))
    return People(practitioner_user, practitioner, patient_users)


def worker(conninfo: str, people: People, seconds: float, seed: int) -> Result:
    """One process: random operations on the hot window until the time is up."""
    rng = random.Random(seed)
    result = Result()
    with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as look, \
            psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as api:
        api.execute("SET ROLE medbook_api")
        # The API's own limits: a hang shows up as 55P03 or 57014, which are unexpected.
        api.execute("SET lock_timeout = '5s'")
        api.execute("SET statement_timeout = '10s'")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            # Targets are chosen from a superuser's view; by the time the call
            # runs, other workers may have changed everything: that is the point.
            slots = [r["id"] for r in look.execute(
                "SELECT id FROM booking.availability_slots WHERE practitioner_id = %s AND start_time > %s",
                (people.practitioner, NOW))]
            appointments = look.execute(
                "SELECT a.id, a.slot_id, a.start_time, p.user_id FROM booking.appointments a "
                "JOIN booking.patients p ON p.id = a.patient_id "
                "WHERE a.practitioner_id = %s AND a.status = 'booked'", (people.practitioner,)).fetchall()
            booked = [a for a in appointments if a["start_time"] > NOW]
            started = [a for a in appointments if a["start_time"] <= NOW]
            op = rng.choices(list(OPERATIONS), list(OPERATIONS.values()))[0]
            if op == "keyed" and slots:
                keyed(api, rng, people, slots, result)
                continue
            if op == "book" and slots:
                call = ("book_slot", (rng.choice(people.patient_users), rng.choice(slots)))
            elif op == "reschedule" and booked and len(slots) > 1:
                target = rng.choice(booked)
                actor = target["user_id"] if rng.random() < 0.7 else people.practitioner_user
                call = ("reschedule_appointment",
                        (actor, target["id"], rng.choice([s for s in slots if s != target["slot_id"]])))
            elif op == "attend" and started:
                call = (rng.choice(["complete_appointment", "mark_no_show"]),
                        (people.practitioner_user, rng.choice(started)["id"]))
            elif op == "cancel" and booked:
                target = rng.choice(booked)
                actor = target["user_id"] if rng.random() < 0.7 else people.practitioner_user
                call = ("cancel_appointment", (actor, target["id"], rng.choice([None, "torture"])))
            elif op == "update" and slots:
                start = WINDOW_START + rng.randrange(WINDOW_STEPS) * GRID
                call = ("update_slot", (people.practitioner_user, rng.choice(slots), start, start + GRID))
            elif op == "delete" and slots:
                call = ("delete_slot", (people.practitioner_user, rng.choice(slots)))
            elif op == "create":
                start = WINDOW_START + rng.randrange(WINDOW_STEPS) * GRID
                call = ("create_slot", (people.practitioner_user, people.practitioner, start, start + GRID))
            elif op == "bulk":
                starts = [WINDOW_START + step * GRID for step in rng.sample(range(WINDOW_STEPS), rng.randint(1, 3))]
                call = ("create_slots", (people.practitioner_user, people.practitioner, starts,
                                         [start + GRID for start in starts]))
            elif op == "publish":
                call = ("publish_schedule", (people.practitioner_user, people.practitioner, WINDOW_START.date()))
            elif op == "time_off":
                start = WINDOW_START + rng.randrange(WINDOW_STEPS) * GRID
                call = ("create_time_off", (people.practitioner_user, people.practitioner, start,
                                            start + rng.randint(1, 3) * GRID, "torture"))
            elif op == "end_time_off":
                away = [r["id"] for r in look.execute("SELECT id FROM booking.time_off_periods WHERE "
                                                      "practitioner_id = %s", (people.practitioner,))]
                if not away:
                    continue
                call = ("delete_time_off", (people.practitioner_user, people.practitioner, rng.choice(away)))
            elif op == "range_delete":
                call = ("delete_slots", (people.practitioner_user, people.practitioner, WINDOW_START.date(),
                                         WINDOW_START.date()))
            else:
                continue
            function, args = call
            placeholders = ", ".join(["%s"] * len(args))
            try:
                rows = api.execute(f"SELECT * FROM booking_api.{function}({placeholders})", args).fetchall()
                result.counts[f"{op} ok"] += 1
                # Slots made and removed, for the ledger.
                if op == "bulk":
                    result.counts["slots created in bulk"] += len(rows)
                elif op == "publish":
                    result.counts["slots published"] += rows[0]["created"]
                elif op == "time_off":
                    result.counts["slots removed by time off"] += rows[0]["removed_slots"]
                elif op == "range_delete":
                    result.counts["slots deleted by range"] += rows[0]["deleted"]
            except psycopg.Error as exc:
                state = exc.sqlstate or type(exc).__name__
                result.counts[f"{op} {state}"] += 1
                if state not in EXPECTED[op]:
                    result.unexpected.append(f"{op} {state}: {exc}")
    return result


def keyed(api: psycopg.Connection, rng: random.Random, people: People, slots: list[int], result: Result) -> None:
    """A booking through perform_idempotently() with a key from the pool all workers share, often
    sent twice, as a client does whose first answer got lost."""
    # The pool turns over every ten seconds, so a long run keeps executing new keys too.
    key = f"k{int(time.time() // 10)}-{rng.randrange(KEYS)}"
    user, slot = rng.choice(people.patient_users), rng.choice(slots)
    for _ in range(2 if rng.random() < 0.5 else 1):
        keyed_once(api, user, key, slot, result)


def keyed_once(api: psycopg.Connection, user: int, key: str, slot: int, result: Result) -> None:
    try:
        row = api.execute("SELECT * FROM booking_api.perform_idempotently(%s, %s, 'book_slot', %s)",
                          (user, key, Jsonb({"slot_id": slot}))).fetchone()
    except psycopg.Error as exc:
        state = exc.sqlstate or type(exc).__name__
        result.counts[f"keyed {state}"] += 1
        if state not in EXPECTED["keyed"]:
            result.unexpected.append(f"keyed {state}: {exc}")
        return
    if row["replayed"]:
        result.counts["keyed replayed"] += 1
    elif row["error_sqlstate"] is None:
        result.counts["keyed ok"] += 1
    else:
        result.counts[f"keyed refused {row['error_sqlstate']}"] += 1
        if row["error_sqlstate"] not in KEYED_REFUSALS:
            result.unexpected.append(f"keyed refused {row['error_sqlstate']}: {row['error_message']}")


def _run_worker(args: tuple) -> Result:
    return worker(*args)


def server_log(conn: psycopg.Connection) -> Path | None:
    """The server's log file, when this process can find and read it."""
    current = conn.execute("SELECT pg_current_logfile() AS f").fetchone()["f"]
    data_dir = Path(conn.execute("SHOW data_directory").fetchone()["data_directory"])
    version = conn.execute("SELECT current_setting('server_version_num')::int / 10000 AS v").fetchone()["v"]
    candidates = [data_dir / current] if current else []
    candidates += [data_dir / "log", Path(f"/var/log/postgresql/postgresql-{version}-main.log")]
    for path in candidates:
        try:
            with path.open("rb"):
                return path
        except OSError:
            continue
    return None


def deadlocks(conn: psycopg.Connection) -> int:
    conn.execute("SELECT pg_stat_clear_snapshot()")
    return conn.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
                        ).fetchone()["deadlocks"]


@dataclass
class Report:
    seconds: float
    workers: int
    counts: Counter
    unexpected: list[str]
    violations: list[dict]
    ledger_mismatches: list[str]
    deadlocks: int
    log: str | None
    log_alarms: list[str]

    @property
    def operations(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        lines = [f"{self.operations} operations by {self.workers} processes in {self.seconds:.1f} s "
                 f"({self.operations / self.seconds:.0f}/s)"]
        lines += [f"  {key}: {value}" for key, value in sorted(self.counts.items())]
        lines += [f"unexpected errors: {len(self.unexpected)}", f"invariant violations: {len(self.violations)}",
                  f"ledger mismatches: {len(self.ledger_mismatches)}",
                  f"deadlocks (pg_stat_database): {self.deadlocks}",
                  f"server log: {self.log or 'not readable from here'}; alarming lines: {len(self.log_alarms)}"]
        lines += [f"  ! {line}" for line in self.unexpected[:10] + self.ledger_mismatches + self.log_alarms[:10]]
        return "\n".join(lines)


def run(conninfo: str, *, seconds: float, workers: int) -> Report:
    """Sets up, runs the workers in parallel processes, and checks everything afterwards."""
    people = setup(conninfo)
    with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as conn:
        deadlocks_before = deadlocks(conn)
        log = server_log(conn)
        log_offset = log.stat().st_size if log else 0
        slots_before = conn.execute("SELECT count(*) AS n FROM booking.availability_slots").fetchone()["n"]

    started = time.monotonic()
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        results = pool.map(_run_worker, [(conninfo, people, seconds, seed) for seed in range(workers)])
    elapsed = time.monotonic() - started

    counts: Counter = Counter()
    unexpected: list[str] = []
    for result in results:
        counts += result.counts
        unexpected += result.unexpected

    time.sleep(1.0)  # backends report their statistics as they exit
    with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as conn:
        violations = conn.execute("SELECT * FROM booking_api.check_booking_invariants()").fetchall()
        facts = conn.execute(
            "SELECT (SELECT count(*) FROM booking.appointments) AS appointments, "
            "(SELECT count(*) FROM booking.appointments WHERE status = 'cancelled') AS cancelled, "
            "(SELECT count(*) FROM booking.appointments WHERE status IN ('completed', 'no_show')) AS attended, "
            "(SELECT count(*) FROM booking.appointment_history) AS history, "
            "(SELECT count(*) FROM booking.availability_slots) AS slots, "
            "(SELECT count(*) FROM booking.idempotency_keys) AS keys").fetchone()
        deadlock_count = deadlocks(conn) - deadlocks_before
    booked = STARTED + counts["book ok"] + counts["keyed ok"] + counts["reschedule ok"]
    cancelled = counts["cancel ok"] + counts["reschedule ok"]
    attended = counts["attend ok"]
    expected_facts = {
        "appointments": booked,
        "cancelled": cancelled,
        "attended": attended,
        "history": booked + cancelled + attended,
        "slots": slots_before + counts["create ok"] + counts["slots created in bulk"] + counts["slots published"]
        - counts["delete ok"] - counts["slots removed by time off"] - counts["slots deleted by range"],
        "keys": counts["keyed ok"] + sum(n for key, n in counts.items() if key.startswith("keyed refused")),
    }
    mismatches = [f"{key}: database {facts[key]}, successful calls say {value}"
                  for key, value in expected_facts.items() if facts[key] != value]

    alarms: list[str] = []
    if log:
        with log.open("rb") as handle:
            handle.seek(log_offset)
            text = handle.read().decode("utf-8", "replace")
        alarms = [line for line in text.splitlines() if any(alarm in line for alarm in LOG_ALARMS)]
    return Report(elapsed, workers, counts, unexpected, violations, mismatches, deadlock_count,
                  str(log) if log else None, alarms)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--database-url", help="a superuser URL of a migrated, throw-away database")
    args = parser.parse_args(argv)
    conninfo = args.database_url
    if not conninfo:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from api import pgserver, schema

        parent = Path(tempfile.mkdtemp(prefix="medbook-torture-"))
        # Registered first, so it runs after the server's own clean-up at exit.
        atexit.register(shutil.rmtree, parent, ignore_errors=True)
        data_dir = parent / "data"
        conninfo = pgserver.start(data_dir, dbname="torture", keep=False,
                                  settings={"max_connections": "100"})
        schema.migrate(conninfo)
    report = run(conninfo, seconds=args.seconds, workers=args.workers)
    print(report.summary())
    healthy = not (report.unexpected or report.violations or report.ledger_mismatches
                   or report.deadlocks or report.log_alarms)
    print("PASS" if healthy else "FAIL")
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
