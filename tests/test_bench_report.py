"""The bench's report: what a plan reads, the goals it judges and the tables it writes, and how the size
curve shares out its slots (no database needed)."""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from stages.common import FULL, SLOTS_PER_DAY, SMOKE
from stages.direct import warm_up_per_client
from stages.report import goals, markdown_tables
from stages.sizes import LIST_SHARE, PLAN_SLOTS, booked_days, bookings_per_client, read_cost

PLANS = """Query Text: SELECT * FROM availability_slots WHERE practitioner_id = p_practitioner_id
Index Scan using availability_slots_available_by_start on availability_slots  (actual rows=10.00 loops=1)
  Index Cond: (practitioner_id = $2)
  Buffers: shared hit=13 read=2

Query Text: SELECT 1 FROM ONLY "booking"."patients" x WHERE "id" OPERATOR(pg_catalog.=) $1 FOR KEY SHARE OF x
LockRows  (cost=0.00..1.63 rows=1 width=10) (actual rows=1.00 loops=1)
  Buffers: shared hit=3
  ->  Seq Scan on patients x  (cost=0.00..1.62 rows=1 width=10) (actual rows=1.00 loops=4)
        Filter: (id = $1)
        Rows Removed by Filter: 49
        Buffers: shared hit=1

Query Text: SELECT now_or_clock FROM booking_clock
Seq Scan on booking_clock  (cost=0.00..1.01 rows=1 width=8) (actual rows=1.00 loops=1)
  Buffers: shared hit=1

Query Text: SELECT * FROM booking_api.book_slot($1, $2)
Function Scan on book_slot  (cost=0.25..0.26 rows=1 width=152) (actual rows=1.00 loops=1)
  Buffers: shared hit=84"""


def test_read_cost_counts_rows_buffers_and_growing_seq_scans():
    cost = read_cost(PLANS)
    assert cost["rows_scanned"] == 10 + 4 + 1  # rows x loops, every scan
    assert cost["rows_removed"] == 49
    assert cost["buffers"] == 15 + 3 + 1 and cost["buffers_read"] == 2  # top node per statement, outer call left out
    assert cost["seq_scans"] == ["patients"]  # booking_clock has one row: scanning it is no defect


def point(label: str, slots: int, book: list[float], p99: list[float], rows: int) -> dict:
    plan = {"rows_scanned": rows, "rows_removed": 0, "buffers": 30, "buffers_read": 0, "seq_scans": []}
    return {"label": label, "slots": slots, "practitioners": slots // 100, "days": 10, "load_seconds": 1.0,
            "load_slots_per_second": slots, "database_bytes": slots * 500, "book_slot": book, "list_p99_ms": p99,
            "list_p50_ms": [0.2] * len(p99), "book_slot_tps": sorted(book)[1], "list_p99_ms_median": sorted(p99)[1],
            "book_slot_over_smallest": 0.9, "list_p99_over_smallest": 1.2,
            "plans": {name: dict(plan) for name in ("list_available_slots", "book_slot", "cancel_appointment")}}


def results(rows_at_10m: int) -> dict:
    return {
        "profile": "full", "started": "20300101T000000Z", "stages": ["direct", "http", "sizes"],
        "sizes": {"clients": [1, 8], "practitioners": 10, "slots": 1200, "reps": 3},
        "direct": {"baseline_tps": {"1": 1000.0, "8": 5000.0}, "book_slot_tps": {"1": 900.0, "8": 3600.0},
                   "book_slot_over_baseline": {"1": 0.9, "8": 0.72}, "cancel_tps": {"1": 800.0, "8": 2500.0},
                   "cancel_over_baseline": {"1": 0.8, "8": 0.5}},
        "http": {"book_rps": {"1": 400.0, "8": 1500.0}, "book_p50_ms": {"1": 2.0, "8": 5.0},
                 "book_p99_ms": {"1": 4.0, "8": 20.0}, "bare_rps": {"1": 420.0, "8": 1600.0},
                 "slots_rps": {"1": 900.0, "8": 1800.0}, "slots_p50_ms": {"1": 1.0, "8": 4.0},
                 "slots_p99_ms": {"1": 2.0, "8": 15.0}, "direct_book_tps": {"1": 900.0, "8": 3500.0},
                 "http_over_direct": {"1": 0.44, "8": 0.43}, "real_over_bare": {"1": 0.95, "8": 0.93},
                 "non_2xx": {"http_book": 0, "bare_book": 0, "http_slots": 0}},
        "size_curve": {"clients": 8, "points": [point("100k", 100_000, [1000, 1100, 900], [1.0, 1.2, 1.1], 19),
                                                  point("10M", 10_000_000, [950, 1000, 900], [1.3, 1.2, 1.4],
                                                        rows_at_10m)]},
    }


def test_goals_carry_every_ratio_the_issue_asks_for():
    judged = {g["key"]: g for g in goals(results(19), "8")}
    assert judged["book_slot_over_baseline"]["measured"] == 0.72 and judged["book_slot_over_baseline"]["met"]
    assert judged["cancel_over_baseline"]["measured"] == 0.5 and not judged["cancel_over_baseline"]["met"]
    assert judged["http_over_direct"]["measured"] == 0.43 and judged["http_over_direct"]["met"]
    assert judged["real_over_bare"]["measured"] == 0.93 and judged["real_over_bare"]["met"]
    assert judged["curve_book_slot"]["measured"] == 0.9 and judged["curve_book_slot"]["met"]
    assert judged["curve_list_p99"]["measured"] == 1.2 and judged["curve_list_p99"]["met"]
    assert judged["curve_plans"]["met"]


def test_a_plan_that_reads_more_rows_as_the_table_grows_misses_its_goal():
    judged = {g["key"]: g for g in goals(results(19_000), "8")}
    assert not judged["curve_plans"]["met"]
    assert "19 -> 19000 rows" in judged["curve_plans"]["measured"]


def test_markdown_tables_are_ready_for_performance_md():
    text = markdown_tables({**results(19), "goals": goals(results(19), "8")})
    assert "| `book_slot` direct (tps) | 900 | 3600 |" in text
    assert "|   real app / bare app (median of pairs) | 0.95 | 0.93 |" in text
    assert "| 10,000,000 | 100,000 x 10 |" in text
    assert "| real app / bare Flask app at 8 clients (>= 0.9) | 0.93 | yes |" in text


@pytest.mark.parametrize("sizes", [FULL, SMOKE, replace(FULL, curve=FULL.curve[1:])], ids=["full", "smoke", "1M,10M"])
def test_the_size_curve_books_the_same_slots_at_every_size_and_never_the_listed_days(sizes):
    shapes = [replace(sizes, practitioners=p, days=d) for p, d in sizes.curve]
    clients = 8 if 8 in sizes.clients else max(sizes.clients)
    per_client = bookings_per_client(shapes, sizes.reps, clients)
    bookings = (sizes.reps * per_client + warm_up_per_client(clients)) * clients
    booked = bookings + PLAN_SLOTS
    smallest = min(shapes, key=lambda s: s.slots)
    kept = max(1, math.ceil(smallest.days * LIST_SHARE))
    # Every run and the plans fit in the smallest size's days before the kept ones, using most of them.
    assert booked <= (smallest.days - kept) * smallest.practitioners * SLOTS_PER_DAY
    assert booked > (smallest.days - kept) * smallest.practitioners * SLOTS_PER_DAY - sizes.reps * clients
    for shape in shapes:
        skip = booked_days(shape, bookings)
        assert booked <= skip * shape.practitioners * SLOTS_PER_DAY  # the listed days hold no booking
        assert skip < shape.days  # and there is at least one of them


def test_the_size_curve_refuses_a_smallest_size_too_small_to_book():
    tiny = replace(SMOKE, practitioners=10, days=5)
    with pytest.raises(SystemExit):
        bookings_per_client([tiny], rounds=3, clients=8)
