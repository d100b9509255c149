"""The hot slot: many clients released together on one slot, exactly one winner per round."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg

from .common import Sizes, percentile


async def hot_slot(conninfo: str, sizes: Sizes, first_slot: int) -> dict[str, Any]:
    """sizes.hot_clients connections book the same slot at once, sizes.hot_rounds times."""
    conns = []
    for i in range(sizes.hot_clients):
        conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
        await conn.execute("SET ROLE medbook_api")
        conns.append((conn, sizes.practitioners + 1 + i % sizes.patients))
    latencies: list[float] = []
    bad_rounds = 0
    other_errors: dict[str, int] = {}
    query = "SELECT * FROM booking_api.book_slot(%s, %s)"

    async def attempt(conn: psycopg.AsyncConnection, user: int, slot: int, t0: float) -> str:
        try:
            await conn.execute(query, (user, slot), prepare=True)
            outcome = "won"
        except psycopg.Error as exc:
            outcome = exc.sqlstate or "error"
        latencies.append((time.perf_counter() - t0) * 1000)
        return outcome

    started = time.monotonic()
    for r in range(sizes.hot_rounds):
        slot = first_slot + 1 + r
        t0 = time.perf_counter()
        outcomes = await asyncio.gather(*(attempt(c, u, slot, t0) for c, u in conns))
        winners = outcomes.count("won")
        if winners != 1:
            bad_rounds += 1
        for outcome in outcomes:
            if outcome not in ("won", "MBS01"):
                other_errors[outcome] = other_errors.get(outcome, 0) + 1
    elapsed = time.monotonic() - started
    for conn, _ in conns:
        await conn.close()
    with psycopg.connect(conninfo) as conn:
        booked, with_one = conn.execute(
            "SELECT count(*) FILTER (WHERE s.status = 'booked'), "
            "       count(*) FILTER (WHERE (SELECT count(*) FROM booking.appointments a "
            "                                WHERE a.slot_id = s.id AND a.status = 'booked') = 1) "
            "  FROM booking.availability_slots s WHERE s.id > %s AND s.id <= %s",
            (first_slot, first_slot + sizes.hot_rounds)).fetchone()
    return {"clients": sizes.hot_clients, "rounds": sizes.hot_rounds, "rounds_without_exactly_one_winner": bad_rounds,
            "other_errors": other_errors, "slots_booked": booked, "slots_with_one_booked_appointment": with_one,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "rounds_per_second": sizes.hot_rounds / elapsed}
