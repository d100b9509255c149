"""Where the time of booking_api.book_slot() goes: the same pgbench run with one safeguard switched off at a time.

A diagnostic for docs/PERFORMANCE.md, never a configuration: it runs in a
throw-away database (a private server, or medbook_bench on DATABASE_URL) and
switches triggers off with ALTER TABLE ... DISABLE TRIGGER as the superuser,
which production never does. Each variant is measured right after a pgbench -N
baseline, at 8 clients, and reported as a ratio to it.

    .venv/bin/python bench/ablation.py [--seconds 10] [--reps 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api import schema  # noqa: E402
from bench.stages.common import FULL, Sizes, bench_database, libpq_env, log, median, pg_binary  # noqa: E402
from bench.stages.data import load_data, max_booked_slot  # noqa: E402
from bench.stages.direct import pgbench  # noqa: E402

# name -> statements that switch a part off (undone after the variant's run)
VARIANTS: dict[str, list[str]] = {
    "book_slot as shipped": [],
    "without the deferred slot/appointment consistency triggers": [
        "ALTER TABLE booking.availability_slots DISABLE TRIGGER availability_slots_booking_consistency",
        "ALTER TABLE booking.appointments DISABLE TRIGGER appointments_booking_consistency"],
    "without the history trigger": [
        "ALTER TABLE booking.appointments DISABLE TRIGGER appointments_record_history"],
    "without foreign-key checks (all triggers off)": [
        "ALTER TABLE booking.appointments DISABLE TRIGGER ALL",
        "ALTER TABLE booking.availability_slots DISABLE TRIGGER ALL",
        "ALTER TABLE booking.appointment_history DISABLE TRIGGER ALL"],
}


def switch(conninfo: str, statements: list[str], enable: bool) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement.replace("DISABLE", "ENABLE") if enable else statement)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args(argv)
    sizes = Sizes(**{**asdict(FULL), "days": 6})
    ratios: dict[str, list[float]] = {name: [] for name in VARIANTS}
    tps: dict[str, list[float]] = {name: [] for name in VARIANTS}
    with bench_database(keep=False) as conninfo:
        schema.migrate(conninfo)
        load_data(conninfo, sizes)
        subprocess.run([pg_binary("pgbench"), "-i", "-q", "-s", str(sizes.pgbench_scale)],  # noqa: S603
                             env=libpq_env(conninfo), capture_output=True, check=True)
        cursor = 0
        for rep in range(args.reps):
            for name, statements in VARIANTS.items():
                base = pgbench(conninfo, ["-N"], clients=args.clients, seconds=args.seconds)
                switch(conninfo, statements, enable=False)
                try:
                    book = pgbench(conninfo, [], clients=args.clients, seconds=args.seconds,
                                         script="book_slot.sql",
                                         defines={"n": 0, "offset": cursor, "clients": args.clients,
                                                  "patient_user_base": sizes.practitioners,
                                                  "patients": sizes.patients})
                finally:
                    switch(conninfo, statements, enable=True)
                cursor = max_booked_slot(conninfo, sizes.slots)
                ratios[name].append(book["tps"] / base["tps"])
                tps[name].append(book["tps"])
                log(f"rep {rep + 1}: {name}: {book['tps']:.0f} tps, {ratios[name][-1]:.2f} x baseline")
    print(f"book_slot at {args.clients} clients, medians of {args.reps} runs (ratio: to pgbench -N run just before)")
    for name in VARIANTS:
        print(f"  {name:62} {median(tps[name]):7.0f} tps  {median(ratios[name]):5.2f} x baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
