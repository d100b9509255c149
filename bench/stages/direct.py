"""Direct stages: pgbench -N (the baseline), book_slot, cancel_appointment, list_available_slots."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from .common import BENCH, CLOCK, EPOCH, FIRST_DAY, Sizes, libpq_env, log, median, percentile, pg_binary
from .data import count_appointments, max_booked_slot

PGBENCH_LINES = {
    "processed": re.compile(r"number of transactions actually processed: (\d+)"),
    "failed": re.compile(r"number of failed transactions: (\d+)"),
    "latency_ms": re.compile(r"latency average = ([\d.]+) ms"),
    "tps": re.compile(r"tps = ([\d.]+) \(without initial connection time\)"),
}


def pgbench(conninfo: str, args: list[str], *, clients: int, seconds: int, script: str | None = None,
            defines: dict[str, int] | None = None, cwd: Path | None = None,
            transactions: int | None = None) -> dict[str, float]:
    """One pgbench run for `seconds` (-T), or of `transactions` per client (-t) when given."""
    length = ["-T", str(seconds)] if transactions is None else ["-t", str(transactions)]
    argv = [pg_binary("pgbench"), "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2)),
            *length, *args]
    if script:
        argv += ["-f", str(BENCH / "pgbench" / script)]
    for name, value in (defines or {}).items():
        argv += ["-D", f"{name}={value}"]
    done = subprocess.run(argv, env=libpq_env(conninfo), capture_output=True, text=True, cwd=cwd,  # noqa: S603
                          check=False)
    out = done.stdout + done.stderr
    if done.returncode != 0:
        raise SystemExit(f"bench: pgbench failed ({' '.join(argv[1:])}):\n{out[-3000:]}")
    result: dict[str, float] = {}
    for key, pattern in PGBENCH_LINES.items():
        match = pattern.search(out)
        if match is None:
            raise SystemExit(f"bench: pgbench printed no {key!r}:\n{out[-3000:]}")
        result[key] = float(match.group(1))
    if result["failed"]:
        raise SystemExit(f"bench: pgbench had {result['failed']:.0f} failed transactions:\n{out[-3000:]}")
    return result


def counted_run(conninfo: str, sizes: Sizes, script: str, status: str, *, clients: int, offset: int,
                transactions: int | None = None) -> dict:
    """One pgbench run of a distinct-row script; the appointments reaching status must match its transactions.

    A timed run (sizes.seconds) may end with one transaction per client cut off
    after its commit was sent; a run of `transactions` per client makes exactly
    clients x transactions, touching rows offset+1 .. offset+clients*transactions.
    """
    before = count_appointments(conninfo, status)
    result = pgbench(conninfo, [], clients=clients, seconds=sizes.seconds, script=script,
                     defines={"n": 0, "offset": offset, "clients": clients,
                              "patient_user_base": sizes.practitioners, "patients": sizes.patients},
                     transactions=transactions)
    made = count_appointments(conninfo, status) - before
    processed = result["processed"]
    if transactions is None:
        counted = processed <= made <= processed + clients
    else:
        counted = processed == made == clients * transactions
    if not counted:
        asked = "" if transactions is None else f" ({clients} x {transactions} asked)"
        raise SystemExit(f"bench: {script}: {processed:.0f} transactions reported{asked}, "
                         f"{made} appointments became {status}")
    return result


WARM_UP = 2_000
GROWING_BOOKING_TABLES = "booking.appointments, booking.appointment_history, booking.events"


def warm_up_per_client(clients: int) -> int:
    """The warm-up's bookings per client: WARM_UP in all, rounded up."""
    return -(-WARM_UP // clients)


def warm_up(conninfo: str, sizes: Sizes, *, clients: int, offset: int = 0) -> int:
    """About WARM_UP bookings from slot offset + 1, then ANALYZE of the tables bookings grow; the next free slot.

    A freshly loaded database's statistics say appointments is empty, and the
    plans a connection caches then read the whole table (before migration 0018,
    the commit-time checks planned a hashed subplan over every appointment):
    the first run would measure a cost that grows with the run. Tools that
    compare versions warm every one up the same way.
    """
    per_client = warm_up_per_client(clients)
    counted_run(conninfo, sizes, "book_slot.sql", "booked", clients=clients, offset=offset,
                transactions=per_client)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"ANALYZE {GROWING_BOOKING_TABLES}")
    return offset + per_client * clients


def direct_runs(conninfo: str, sizes: Sizes, cursor: int, limit: int) -> tuple[dict, int]:
    """Baseline and book_slot, interleaved at each client count, sizes.reps times."""
    runs: dict[str, dict[int, list[dict]]] = {"baseline": {}, "book_slot": {}}
    for rep in range(sizes.reps):
        for clients in sizes.clients:
            base = pgbench(conninfo, ["-N"], clients=clients, seconds=sizes.seconds)
            runs["baseline"].setdefault(clients, []).append(base)
            book = counted_run(conninfo, sizes, "book_slot.sql", "booked", clients=clients, offset=cursor)
            runs["book_slot"].setdefault(clients, []).append(book)
            cursor = max_booked_slot(conninfo, limit)
            log(f"rep {rep + 1}/{sizes.reps}, {clients:>2} clients: baseline {base['tps']:8.0f} tps, "
                f"book_slot {book['tps']:8.0f} tps")
    return runs, cursor


def cancel_runs(conninfo: str, sizes: Sizes, offset: int, available: int) -> dict[int, list[dict]]:
    runs: dict[int, list[dict]] = {}
    for rep in range(sizes.reps):
        for clients in sizes.clients:
            result = counted_run(conninfo, sizes, "cancel_appointment.sql", "cancelled", clients=clients,
                                 offset=offset)
            runs.setdefault(clients, []).append(result)
            with psycopg.connect(conninfo) as conn:
                offset = conn.execute("SELECT max(id) FROM booking.appointments "
                                      "WHERE status = 'cancelled'").fetchone()[0]
            if offset >= available:
                raise SystemExit("bench: the pre-booked appointments ran out; raise the reserve")
            log(f"rep {rep + 1}/{sizes.reps}, {clients:>2} clients: cancel_appointment {result['tps']:8.0f} tps")
    return runs


def list_latency(conninfo: str, sizes: Sizes, workdir: Path, *, skip_days: int = 0) -> dict[str, Any]:
    """p50/p99 of list_available_slots from pgbench's per-transaction log, one client.

    The dates are drawn from the slot days after the first skip_days.
    """
    p50s, p99s, tps = [], [], []
    for rep in range(sizes.reps):
        logdir = workdir / f"list-{rep}"
        logdir.mkdir(parents=True, exist_ok=True)
        result = pgbench(conninfo, ["-l", "--log-prefix", str(logdir / "lat")], clients=1,
                         seconds=sizes.list_seconds, script="list_available_slots.sql",
                         defines={"practitioners": sizes.practitioners, "days": sizes.days - skip_days,
                                  "first_day": (FIRST_DAY - EPOCH).days + skip_days,
                                  "patient_user_base": sizes.practitioners, "patients": sizes.patients},
                         cwd=logdir)
        latencies = []
        for path in logdir.glob("lat.*"):
            for line in path.read_text().splitlines():
                latencies.append(int(line.split()[2]) / 1000.0)  # column 3: latency in microseconds
        p50s.append(percentile(latencies, 50))
        p99s.append(percentile(latencies, 99))
        tps.append(result["tps"])
        log(f"rep {rep + 1}/{sizes.reps}: list_available_slots p50 {p50s[-1]:.3f} ms, p99 {p99s[-1]:.3f} ms "
            f"({len(latencies)} calls)")
    return {"p50_ms": median(p50s), "p99_ms": median(p99s), "tps_1_client": median(tps),
            "runs": {"p50_ms": p50s, "p99_ms": p99s}}


def list_plan(conninfo: str, sizes: Sizes) -> dict[str, Any]:
    """The plans of the statements inside list_available_slots, from auto_explain."""
    notices: list[str] = []
    practitioner = sizes.practitioners // 2
    day = FIRST_DAY + timedelta(days=sizes.days // 2)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        method = "auto_explain (log_nested_statements, log_analyze)"
        try:
            conn.execute("LOAD 'auto_explain'")
            for name, value in (("auto_explain.log_min_duration", "0"), ("auto_explain.log_analyze", "on"),
                                ("auto_explain.log_nested_statements", "on"), ("auto_explain.log_level", "notice"),
                                ("auto_explain.log_timing", "on"), ("auto_explain.log_buffers", "on")):
                conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        except psycopg.Error:
            method = "EXPLAIN of the function's date query (auto_explain unavailable)"
        conn.execute("SET ROLE medbook_api")
        # Several calls, so PL/pgSQL's plan cache is in its steady state; keep the last call's plans.
        for _ in range(8):
            notices.clear()
            rows = conn.execute("SELECT * FROM booking_api.list_available_slots(%s, %s, %s, NULL, 100)",
                                (sizes.practitioners + 1, practitioner, day)).fetchall()
        conn.execute("RESET ROLE")
        if not notices:
            plan = conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM booking.availability_slots WHERE practitioner_id = %s "
                "AND status = 'available' AND start_time >= %s AND start_time < %s AND start_time > %s "
                "ORDER BY start_time",
                (practitioner, datetime.combine(day, datetime.min.time(), UTC),
                 datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC), CLOCK)).fetchall()
            notices = ["\n".join(r[0] for r in plan)]
    main = [n for n in notices if "availability_slots" in n and "start_time" in n]
    text = "\n\n".join(notices)
    slots_plan = "\n".join(main)
    return {"method": method, "rows": len(rows), "plans": text,
            "index_scan": bool(re.search(r"Index (Only )?Scan", slots_plan)),
            "seq_scan_on_slots": "Seq Scan on availability_slots" in text}
