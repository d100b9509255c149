"""What the row rules cost a booking as CHECK constraints and as BEFORE triggers (migration 0015), in one session.

One connection books slots and cancels appointments in blocks, switching between
the two forms of the same rules between blocks (the CHECK constraints of 0015's
rollback added NOT VALID with the triggers disabled, or the triggers as
shipped), and reads the backend's own CPU time (/proc/<pid>/schedstat, in
nanoseconds) around each block. Every block of one form is next to a block of
the other, so load on the machine moves both alike; the report gives the median
CPU microseconds per call of each form. A diagnostic in a throw-away database (a
private server, or medbook_bench on DATABASE_URL), never a configuration.

    .venv/bin/python bench/row_rules_cost.py [--blocks 8] [--calls 300]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api import schema  # noqa: E402
from bench.stages.common import FULL, Sizes, bench_database, median  # noqa: E402
from bench.stages.data import load_data  # noqa: E402

MIGRATIONS = ROOT / "db" / "migrations"
TRIGGERS = [("appointments", "appointments_row_rules"), ("availability_slots", "availability_slots_row_rules"),
            ("appointment_history", "appointment_history_row_rules")]


def statements() -> tuple[str, str]:
    """The ADD CONSTRAINT ... NOT VALID statements of 0015's rollback, and the DROP CONSTRAINTs of 0013."""
    back = (MIGRATIONS / "0015_row_rules_in_triggers.rollback.sql").read_text()
    forward = (MIGRATIONS / "0015_row_rules_in_triggers.sql").read_text()
    add = back[back.index("ALTER TABLE booking.appointments\n    ADD"):
               back.index("ALTER TABLE booking.appointments VALIDATE")]
    drop = forward[forward.index("ALTER TABLE booking.appointments\n    DROP"):forward.index("RESET ROLE")]
    return add, drop


def backend_ns(pid: int) -> int:
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--blocks", type=int, default=8, help="blocks of each form")
    parser.add_argument("--calls", type=int, default=300, help="bookings (then cancellations) per block")
    args = parser.parse_args(argv)
    sizes = Sizes(**{**asdict(FULL), "practitioners": 1_000, "days": 12})
    add, drop = statements()
    cpu: dict[str, dict[str, list[float]]] = {form: {"book_slot": [], "cancel_appointment": []}
                                              for form in ("CHECK constraints", "BEFORE triggers")}
    with bench_database(keep=False) as conninfo:
        schema.migrate(conninfo)
        load_data(conninfo, sizes)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            slot = 0
            booked: list[tuple[int, int]] = []
            form_now = "BEFORE triggers"

            def use(form: str) -> None:
                nonlocal form_now
                if form == form_now:
                    return
                conn.execute(add if form == "CHECK constraints" else drop)
                for table, trigger in TRIGGERS:
                    switch = "DISABLE" if form == "CHECK constraints" else "ENABLE"
                    conn.execute(f"ALTER TABLE booking.{table} {switch} TRIGGER {trigger}")
                form_now = form

            def book(count: int) -> None:
                nonlocal slot
                for _ in range(count):
                    slot += 1
                    user = sizes.practitioners + 1 + slot % sizes.patients
                    row = conn.execute("SELECT id FROM booking_api.book_slot(%s, %s)", (user, slot),
                                       prepare=True).fetchone()
                    booked.append((user, row[0]))

            def cancel(count: int) -> None:
                for _ in range(count):
                    user, appointment = booked.pop(0)
                    conn.execute("SELECT id FROM booking_api.cancel_appointment(%s, %s, 'bench')",
                                 (user, appointment), prepare=True)

            for block in range(args.blocks):
                forms = ("CHECK constraints", "BEFORE triggers")
                for form in forms if block % 2 == 0 else forms[::-1]:
                    use(form)
                    book(20)   # plans again after the DDL
                    cancel(20)
                    for path, run in (("book_slot", book), ("cancel_appointment", cancel)):
                        before = backend_ns(pid)
                        run(args.calls)
                        cpu[form][path].append((backend_ns(pid) - before) / args.calls / 1000)
            use("BEFORE triggers")
    print(f"backend CPU microseconds per call, one session, medians of {args.blocks} interleaved blocks "
          f"of {args.calls} calls")
    for form, paths in cpu.items():
        print(f"  {form:18} " + "  ".join(f"{path} {median(v):5.0f} us ({', '.join(f'{x:.0f}' for x in v)})"
                                          for path, v in paths.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
