"""The practitioner directory at the bench's size: latency of list_practitioners() and its plans.

Runs after the other stages, on the same data: every practitioner with ten
30-minute slots a day, some of them booked by then. Specialties are spread
first (a tenth each of ten, and one in a thousand "rare"), so the filters have
something to select. Each case is called as medbook_api, first page and then
every next page up to --pages, timed from the client; the plans come from
auto_explain of the function's own statements (as for list_available_slots).
"""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import psycopg

from .common import FIRST_DAY, Sizes, log, median, percentile

SPECIALTIES = ["General practice", "Physiotherapy", "Dermatology", "Cardiology", "Psychology", "Osteopathy",
               "Dietetics", "Podiatry", "Speech therapy", "Paediatrics"]
CALL = "SELECT * FROM booking_api.list_practitioners(%s, %s, %s, %s, %s, %s)"


def cases(sizes: Sizes) -> dict[str, tuple]:
    """name -> (specialty, available_on, tz): the walk, a filter it meets often, and its fallbacks."""
    middle = FIRST_DAY + timedelta(days=sizes.days // 2)
    return {
        "no filter": (None, None, None),
        "specialty (a tenth)": ("physiotherapy", None, None),
        "available_on (own zones)": (None, middle, None),
        "available_on + tz + specialty": ("dermatology", middle, "Europe/London"),
        "rare specialty (fallback)": ("rare", None, None),
        "date with no slots (fallback)": (None, FIRST_DAY + timedelta(days=sizes.days + 30), None),
    }


def directory_stage(conninfo: str, sizes: Sizes, *, calls: int = 200, pages: int = 5) -> dict[str, Any]:
    actor = sizes.practitioners + 1  # a patient's user
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("UPDATE practitioners SET specialty = CASE WHEN id %% 1000 = 7 THEN 'Rare' "
                     "ELSE (%s::text[])[1 + id %% 10] END", (SPECIALTIES,))
        conn.execute("VACUUM ANALYZE practitioners")
        conn.execute("SET ROLE medbook_api")
        results: dict[str, Any] = {}
        for name, (specialty, day, tz) in cases(sizes).items():
            first, deep, rows = [], [], 0
            for _ in range(calls):
                t0 = time.perf_counter()
                page = conn.execute(CALL, (actor, specialty, day, tz, 20, None)).fetchall()
                first.append((time.perf_counter() - t0) * 1000)
                rows = len(page)
            cursor = page[-1][-1] if page else None
            for _ in range(pages - 1):
                if cursor is None:
                    break
                t0 = time.perf_counter()
                page = conn.execute(CALL, (actor, specialty, day, tz, 20, cursor)).fetchall()
                deep.append((time.perf_counter() - t0) * 1000)
                cursor = page[-1][-1] if page else None
            results[name] = {"rows": rows, "p50_ms": percentile(first, 50), "p99_ms": percentile(first, 99),
                             "next_pages_median_ms": median(deep) if deep else None}
            log(f"directory, {name}: {rows} rows, p50 {results[name]['p50_ms']:.2f} ms, "
                f"p99 {results[name]['p99_ms']:.2f} ms")
        conn.execute("RESET ROLE")
    return {"cases": results, "plans": plans(conninfo, sizes)}


def plans(conninfo: str, sizes: Sizes) -> dict[str, Any]:
    """auto_explain of list_practitioners' statements for the walk and for a fallback."""
    found: dict[str, Any] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        try:
            conn.execute("LOAD 'auto_explain'")
        except psycopg.Error:
            return {"method": "auto_explain unavailable"}
        for name, value in (("auto_explain.log_min_duration", "0"), ("auto_explain.log_analyze", "on"),
                            ("auto_explain.log_nested_statements", "on"), ("auto_explain.log_level", "notice"),
                            ("auto_explain.log_timing", "off"), ("auto_explain.log_buffers", "on")):
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        conn.execute("SET ROLE medbook_api")
        for name in ("no filter", "rare specialty (fallback)"):
            specialty, day, tz = cases(sizes)[name]
            for _ in range(6):  # PL/pgSQL's plan cache in its steady state; keep the last call's plans
                notices.clear()
                conn.execute(CALL, (sizes.practitioners + 1, specialty, day, tz, 20, None)).fetchall()
            # A loop over a query logs each statement it runs once per row: keep each plan once.
            unique, seen = [], set()
            for notice in notices:
                key = re.sub(r"[0-9][0-9.:+ -]*", "#", notice)
                if key not in seen:
                    seen.add(key)
                    unique.append(notice)
            found[name] = {"statements": len(unique), "plans": "\n\n".join(unique),
                           "seq_scan_on_slots": any("Seq Scan on availability_slots" in n for n in notices)}
        conn.execute("RESET ROLE")
    return found


def report_lines(directory: dict[str, Any]) -> list[str]:
    lines = ["", "practitioner directory (list_practitioners, 20 per page, as medbook_api):"]
    for name, case in directory["cases"].items():
        deep = case["next_pages_median_ms"]
        lines.append(f"  {name:34} {case['rows']:>3} rows  p50 {case['p50_ms']:7.2f} ms  p99 {case['p99_ms']:7.2f} ms"
                     + (f"  next pages {deep:.2f} ms" if deep is not None else ""))
    for name, plan in directory["plans"].items():
        if isinstance(plan, dict):
            lines.append(f"  plan, {name}: seq scan on availability_slots: {plan['seq_scan_on_slots']}")
    return lines
