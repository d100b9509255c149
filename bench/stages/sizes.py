"""Cost as data grows: book_slot throughput, available-slots p99 and the hot queries' plans at several sizes.

Each size is a database of its own on the bench server, loaded like the main
one (bench/stages/data.py: generate_series statements through every constraint
and trigger, one connection per core). All of them exist at once, so every
round measures each size back to back, in an order that changes from round
to round, and each figure is compared with the smallest size's in the same
round. The plans come from auto_explain of each function's own statements
(triggers and foreign-key checks included): the rows each scan reads must not
grow with the table.

Every size does the same work: each booking run is a fixed number of
transactions (pgbench -t), the same for every size and round. Slot ids are
time-major, so the runs fill whole days from the first; the count is the most
that lets every round's bookings, and then the plan calls' own, fit in the
smallest database without touching the last fifth of its days (LIST_SHARE).
At each size the list calls and the plans ask only for dates after the last
booked day, so every list call at every size sees a full day of available
slots, and no run can run out of slots however fast the machine.

Before the rounds, each size takes WARM_UP bookings and is analyzed: freshly
loaded, its appointments tables are empty to the planner, and the plans each
connection caches for the functions, triggers and foreign-key checks then
scan every appointment made so far (a sequential scan, or a hashed subplan
over the whole table), a cost that grows through the first run until
autovacuum's next analyze, up to a minute later. With a few thousand
appointments known, every one of those is an index probe whatever the size.

Each list run waits until no autovacuum worker is running (quiet()): the
booking run just before it updates a quarter of the smallest database's slots,
enough for autovacuum to vacuum that table, and a vacuum landing in a
five-second run of 50-microsecond calls decides its p99. No CHECKPOINT is
forced: every booking run would then start right after one and pay a
full-page image for each page it touches first, which production, with a
checkpoint every few minutes, does not.
"""

from __future__ import annotations

import math
import os
import re
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from api import schema

from .common import FIRST_DAY, SLOTS_PER_DAY, Sizes, log, median
from .data import load_data
from .direct import counted_run, list_latency, warm_up, warm_up_per_client

AUTO_EXPLAIN = (("auto_explain.log_min_duration", "0"), ("auto_explain.log_analyze", "on"),
                ("auto_explain.log_nested_statements", "on"), ("auto_explain.log_level", "notice"),
                ("auto_explain.log_timing", "off"), ("auto_explain.log_buffers", "on"),
                ("auto_explain.log_triggers", "on"))
SCAN = re.compile(r"(Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan|Bitmap Index Scan)"
                  r"(?: using (\S+))? on (\S+).*?actual (?:time=\S+ )?rows=([\d.]+) loops=(\d+)")
REMOVED = re.compile(r"Rows Removed by (?:Filter|Index Recheck|Join Filter): (\d+)")
BUFFERS = re.compile(r"Buffers: shared(?: hit=(\d+))?(?: read=(\d+))?")


def quiet(conninfo: str, timeout: float = 120.0) -> None:
    """Waits (up to timeout) until no autovacuum worker is running."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while time.monotonic() < deadline and conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'").fetchone()[0]:
            time.sleep(0.2)


def label(slots: int) -> str:
    return f"{slots / 1e6:g}M" if slots >= 1_000_000 else f"{slots / 1e3:g}k"


def _database(server: str, name: str) -> str:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(server, dbname=name)


def _drop(server: str, name: str) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


# Tables that grow with the data; a sequential scan of one of them on a hot path is a defect.
# (booking_clock has one row and event_types a handful: scanning them is the cheapest plan.)
GROWING = {"availability_slots", "appointments", "appointment_history", "events", "patients", "users",
           "practitioners", "practitioner_booking_settings"}


def read_cost(plans: str) -> dict[str, Any]:
    """What one call's statements read: rows every scan returned (times loops), rows filters removed, buffers.

    plans: auto_explain's notices, one statement each, blank-line separated. A
    statement's buffers are its top node's (they include its children's); the
    outer `SELECT * FROM booking_api...` is left out, as it includes the others.
    """
    rows = removed = hit = read = 0
    seq = set()
    for statement in plans.split("\n\n"):
        if "Query Text: SELECT * FROM booking_api." in statement:
            continue
        first_buffers = True
        for line in statement.splitlines():
            scan = SCAN.search(line)
            if scan:
                rows += round(float(scan.group(4)) * int(scan.group(5)))
                if scan.group(1) == "Seq Scan" and scan.group(3) in GROWING:
                    seq.add(scan.group(3))
            gone = REMOVED.search(line)
            if gone:
                removed += int(gone.group(1))
            used = BUFFERS.search(line)
            if used and line.strip().startswith("Buffers:") and first_buffers:
                first_buffers = False
                hit += int(used.group(1) or 0)
                read += int(used.group(2) or 0)
    return {"rows_scanned": rows, "rows_removed": removed, "buffers": hit + read, "buffers_read": read,
            "seq_scans": sorted(seq)}


# hot_plans calls each function PLAN_CALLS times; its bookings take the slots PLAN_GAP past the runs' last one.
PLAN_CALLS = 6
PLAN_GAP = 1_000
PLAN_SLOTS = PLAN_GAP + PLAN_CALLS
# The last fifth of the smallest size's days (at least one) is never booked: the list calls' dates.
LIST_SHARE = 0.2
# Bookings before the rounds, after which the booking tables are analyzed (see above); 400 were too few.


def hot_plans(conninfo: str, shape: Sizes, first_slot: int, skip_days: int = 0) -> dict[str, Any]:
    """auto_explain of list_available_slots, book_slot and cancel_appointment, as the API calls them.

    Each is called six times (PL/pgSQL's plan cache settles after five); the last
    call's plans are kept. The list asks for the middle one of the days after
    the first skip_days (none of them booked); the bookings take slots
    first_slot+1.. and are then cancelled.
    """
    user = shape.practitioners + 1
    practitioner = shape.practitioners // 2 + 1
    day = FIRST_DAY + timedelta(days=skip_days + (shape.days - skip_days) // 2)
    out: dict[str, Any] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        conn.execute("LOAD 'auto_explain'")
        for name, value in AUTO_EXPLAIN:
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        conn.execute("SET ROLE medbook_api")
        booked = []
        calls = {
            "list_available_slots": lambda i: conn.execute(
                "SELECT * FROM booking_api.list_available_slots(%s, %s, %s, NULL, 100)",
                (user, practitioner, day)),
            "book_slot": lambda i: booked.append(conn.execute(
                "SELECT * FROM booking_api.book_slot(%s, %s)", (user, first_slot + i + 1)).fetchone()[0]),
            "cancel_appointment": lambda i: conn.execute(
                "SELECT * FROM booking_api.cancel_appointment(%s, %s, NULL)", (user, booked[i])),
        }
        for name, call in calls.items():
            for i in range(PLAN_CALLS):
                notices.clear()
                call(i)
            text = "\n\n".join(notices)
            out[name] = {**read_cost(text), "plans": text}
        conn.execute("RESET ROLE")
    return out


def bookings_per_client(shapes: list[Sizes], rounds: int, clients: int) -> int:
    """Bookings per client per run, the same at every size.

    The warm-up's, all rounds' and then the plans' bookings fit in the smallest
    size's days but its last LIST_SHARE (at least one day), which stay free.
    """
    smallest = min(shapes, key=lambda s: s.slots)
    free_days = max(1, math.ceil(smallest.days * LIST_SHARE))
    if free_days >= smallest.days:
        raise SystemExit(f"bench: the smallest size ({smallest.days} days) has no day to book")
    bookable = ((smallest.days - free_days) * smallest.practitioners * SLOTS_PER_DAY
                - warm_up_per_client(clients) * clients - PLAN_SLOTS)
    per_client = bookable // (rounds * clients)
    if per_client < 1:
        raise SystemExit(f"bench: the smallest size's {bookable} bookable slots do not make "
                         f"{rounds} runs of {clients} clients")
    return per_client


def booked_days(shape: Sizes, bookings: int) -> int:
    """Days of shape that the bookings (warm-up and runs: bookings in all) and the plans' touch, from the first."""
    return math.ceil((bookings + PLAN_SLOTS) / (shape.practitioners * SLOTS_PER_DAY))


def size_curve(server: str, sizes: Sizes, workdir: Path, *, keep: bool = False) -> dict[str, Any]:
    """The curve over sizes.curve [(practitioners, days), ...]; the smallest is the reference."""
    clients = 8 if 8 in sizes.clients else max(sizes.clients)
    shapes = [replace(sizes, practitioners=p, days=d) for p, d in sizes.curve]
    names = [f"medbook_bench_size_{i}" for i in range(len(shapes))]
    points: list[dict[str, Any]] = []
    try:
        for shape, name in zip(shapes, names, strict=True):
            conninfo = _database(server, name)
            schema.migrate(conninfo)
            seconds = load_data(conninfo, shape, parallel=max(1, min(4, os.cpu_count() or 1)))
            with psycopg.connect(conninfo) as conn:
                size_bytes = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            points.append({"label": label(shape.slots), "slots": shape.slots, "practitioners": shape.practitioners,
                           "days": shape.days, "load_seconds": round(seconds, 1),
                           "load_slots_per_second": round(shape.slots / seconds), "database_bytes": size_bytes,
                           "conninfo": conninfo, "cursor": 0, "book_slot": [], "list_p99_ms": [],
                           "list_p50_ms": []})
        per_client = bookings_per_client(shapes, sizes.reps, clients)
        for point, shape in zip(points, shapes, strict=True):
            point["skip_days"] = booked_days(shape, (sizes.reps * per_client + warm_up_per_client(clients)) * clients)
            point["cursor"] = warm_up(point["conninfo"], shape, clients=clients)
        skipped = ", ".join(f"{p['label']}: {p['skip_days']}" for p in points)
        log(f"each booking run: {clients} clients x {per_client:,} bookings; the list calls skip the booked "
            f"days ({skipped})")
        # Rounds: every size back to back, in a rotating order.
        for rnd in range(sizes.reps):
            order = points[rnd % len(points):] + points[:rnd % len(points)]
            for point, shape in ((p, shapes[points.index(p)]) for p in order):
                run = counted_run(point["conninfo"], shape, "book_slot.sql", "booked", clients=clients,
                                  offset=point["cursor"], transactions=per_client)
                point["cursor"] += clients * per_client
                point["book_slot"].append(run["tps"])
                quiet(point["conninfo"])
                listing = list_latency(point["conninfo"], replace(shape, reps=1),
                                       workdir / f"sizes-{point['label']}-{rnd}", skip_days=point["skip_days"])
                point["list_p99_ms"].append(listing["p99_ms"])
                point["list_p50_ms"].append(listing["p50_ms"])
                log(f"round {rnd + 1}/{sizes.reps}, {point['label']} slots: book_slot {run['tps']:.0f} tps "
                    f"({clients} x {per_client:,} in {clients * per_client / run['tps']:.1f} s), "
                    f"list_available_slots p99 {listing['p99_ms']:.3f} ms")
        for point, shape in zip(points, shapes, strict=True):
            point["plans"] = hot_plans(point["conninfo"], shape, point["cursor"] + PLAN_GAP, point["skip_days"])
    finally:
        if not keep:
            for name in names:
                _drop(server, name)
    base = points[0]
    for point in points:
        point["book_slot_tps"] = median(point["book_slot"])
        point["list_p99_ms_median"] = median(point["list_p99_ms"])
        point["book_slot_over_smallest"] = median([a / b for a, b in zip(point["book_slot"], base["book_slot"],
                                                                            strict=True)])
        point["list_p99_over_smallest"] = median([a / b for a, b in zip(point["list_p99_ms"], base["list_p99_ms"],
                                                                           strict=True)])
        point.pop("conninfo")
    return {"clients": clients, "bookings_per_run": clients * per_client, "points": points}


def flatness(curve: dict[str, Any]) -> dict[str, Any]:
    """The curve's goals: throughput and p99 at the largest size against the smallest, and the plans' reads."""
    points = curve["points"]
    small, large = points[0], points[-1]
    grown = {}
    for name in small["plans"]:
        a, b = small["plans"][name], large["plans"][name]
        grown[name] = {"rows_smallest": a["rows_scanned"] + a["rows_removed"],
                       "rows_largest": b["rows_scanned"] + b["rows_removed"],
                       "buffers_smallest": a["buffers"], "buffers_largest": b["buffers"],
                       "seq_scans_largest": b["seq_scans"]}
    return {"book_slot_largest_over_smallest": large["book_slot_over_smallest"],
            "list_p99_largest_over_smallest": large["list_p99_over_smallest"], "plans": grown,
            "sizes": [p["slots"] for p in points]}

