"""Where the time of book_slot() and cancel_appointment() goes: one part switched off at a time.

A diagnostic for docs/PERFORMANCE.md, never a configuration: it runs in a
throw-away database (a private server, or medbook_bench on DATABASE_URL) and
switches triggers off with ALTER TABLE ... DISABLE TRIGGER as the superuser,
which production never does. Each variant is measured right after a pgbench -N
baseline at the same client count and reported as a ratio to it; the variants
of one round run back to back, so every ratio compares neighbouring runs.

Only triggers that exist in the schema are switched (a variant naming none is
skipped), so the tool keeps working as the schema changes. The database is
warmed up and analyzed first; every booking run (and every cancellation run)
makes the same number of transactions, its share of the slots, so variants do
equal work and no run can run out of slots.

    .venv/bin/python bench/ablation.py [--seconds 8] [--reps 3] [--no-cancel]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api import schema  # noqa: E402
from bench.compare import measured  # noqa: E402
from bench.stages.common import FULL, Sizes, bench_database, libpq_env, log, median, pg_binary  # noqa: E402
from bench.stages.cpu import postmaster_pid  # noqa: E402
from bench.stages.data import load_data, prebook  # noqa: E402
from bench.stages.direct import counted_run, pgbench, warm_up  # noqa: E402

# name -> (table, trigger) pairs switched off for the variant's run; "*" is every trigger of the table.
# ("*", "constraint:NAME") is every trigger that checks the foreign key NAME, on both its tables.
# ("event_log_settings", "notify_on_commit") is the event log's setting (0011a), not a trigger: switched off by UPDATE.
VARIANTS: dict[str, list[tuple[str, str]]] = {
    "as shipped": [],
    "without NOTIFY on commit (notify_on_commit off)": [("event_log_settings", "notify_on_commit")],
    "without the event trigger": [("appointments", "appointments_record_event")],
    "without the history trigger": [("appointments", "appointments_record_history")],
    "without the consistency triggers (before 0020)": [
        ("availability_slots", "availability_slots_booking_consistency"),
        ("appointments", "appointments_booking_consistency")],
    "without the consistency foreign keys (0020)": [("*", "constraint:appointments_holder_slot_is_booked"),
                                                    ("*", "constraint:availability_slots_booked_has_holder")],
    "without the row-rule triggers (version, guard and rules; 0017)": [
        ("availability_slots", "availability_slots_row_rules"), ("appointments", "appointments_row_rules"),
        ("appointment_history", "appointment_history_row_rules")],
    "without every user trigger (foreign keys stay)": [
        ("appointments", "USER"), ("availability_slots", "USER"), ("appointment_history", "USER"),
        ("events", "USER")],
    "without any trigger (foreign keys too)": [
        ("appointments", "ALL"), ("availability_slots", "ALL"), ("appointment_history", "ALL"), ("events", "ALL")],
}


def existing(conninfo: str, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    with psycopg.connect(conninfo) as conn:
        found = []
        for _, g in [p for p in pairs if p[1].startswith("constraint:")]:
            found += conn.execute(
                "SELECT c.relname, format('%%I', t.tgname) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_constraint k ON k.oid = t.tgconstraint "
                "WHERE k.conname = %s AND k.connamespace = 'booking'::regnamespace ORDER BY 1, 2",
                (g.removeprefix("constraint:"),)).fetchall()
        pairs = [p for p in pairs if not p[1].startswith("constraint:")]
        return found + [(t, g) for t, g in pairs if g in ("USER", "ALL") or conn.execute(
            "SELECT 1 FROM pg_trigger WHERE tgname = %s AND tgrelid = to_regclass(%s)",
            (g, f"booking.{t}")).fetchone() or conn.execute(
            "SELECT 1 FROM pg_attribute WHERE attname = %s AND attrelid = to_regclass(%s)",
            (g, f"booking.{t}")).fetchone()]


def switch(conninfo: str, pairs: list[tuple[str, str]], enable: bool) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for table, trigger in pairs:
            if table == "event_log_settings":
                conn.execute(f"UPDATE booking.event_log_settings SET {trigger} = %s", (enable,))
            else:
                conn.execute(f"ALTER TABLE booking.{table} {'ENABLE' if enable else 'DISABLE'} TRIGGER {trigger}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8, help="length of each pgbench -N baseline run")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--practitioners", type=int, default=4_000)
    parser.add_argument("--days", type=int, default=24)
    parser.add_argument("--only", action="append", help="run only variants whose name contains this (repeatable)")
    parser.add_argument("--no-cancel", action="store_true", help="book_slot only")
    parser.add_argument("--notify-off", action="store_true",
                        help="run every variant with event_log_settings.notify_on_commit off")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    sizes = Sizes(**{**asdict(FULL), "practitioners": args.practitioners, "days": args.days,
                     "clients": (args.clients,), "seconds": args.seconds, "reps": args.reps})
    names = [n for n in VARIANTS if n == "as shipped" or not args.only or any(o in n for o in args.only)]
    paths = ["book_slot"] + ([] if args.no_cancel else ["cancel_appointment"])
    ratios = {p: {n: [] for n in names} for p in paths}
    tps = {p: {n: [] for n in names} for p in paths}
    cpu = {p: {n: [] for n in names} for p in paths}  # server + pgbench CPU us per transaction
    base_cpu: list[float] = []
    with bench_database(keep=False) as conninfo:
        schema.migrate(conninfo)
        load_data(conninfo, sizes)
        subprocess.run([pg_binary("pgbench"), "-i", "-q", "-s", str(sizes.pgbench_scale)],  # noqa: S603
                       env=libpq_env(conninfo), capture_output=True, check=True)
        if args.notify_off:
            switch(conninfo, existing(conninfo, [("event_log_settings", "notify_on_commit")]), enable=False)
        variants = {n: existing(conninfo, VARIANTS[n]) for n in names}
        names = [n for n in names if n == "as shipped" or variants[n]]
        postmaster = postmaster_pid(conninfo)
        cursor = warm_up(conninfo, sizes, clients=args.clients)
        cancel_offset = 0
        runs = args.reps * len(names)
        if "cancel_appointment" in paths:
            # The top half of the free slots is pre-booked for the cancellation runs.
            reserve = (sizes.slots - cursor) // 2
            cancel_offset = prebook(conninfo, sizes, sizes.slots - reserve, reserve)
            limit = sizes.slots - reserve
        else:
            limit, reserve = sizes.slots, 0
        # Every run of a path makes the same number of transactions (pgbench -t), as many as
        # its share of the slots allows: equal work per variant, and no run can exhaust them.
        per_client = {"book_slot": (limit - cursor) // (runs * args.clients),
                      "cancel_appointment": reserve // (runs * args.clients)}
        if min(per_client[p] for p in paths) < 1:
            raise SystemExit("ablation: too few slots for the runs; raise --days")
        log("each run: " + ", ".join(f"{p} {args.clients} x {per_client[p]:,}" for p in paths))
        for rep in range(args.reps):
            for path in paths:
                for name in names:
                    base = measured(postmaster, pgbench, conninfo, ["-N"], clients=args.clients,
                                    seconds=args.seconds)
                    base_cpu.append(base["server_cpu_us"] + base["client_cpu_us"])
                    switch(conninfo, variants[name], enable=False)
                    try:
                        if path == "book_slot":
                            run = measured(postmaster, counted_run, conninfo, sizes, "book_slot.sql", "booked",
                                           clients=args.clients, offset=cursor,
                                           transactions=per_client[path])
                        else:
                            run = measured(postmaster, counted_run, conninfo, sizes, "cancel_appointment.sql",
                                           "cancelled", clients=args.clients, offset=cancel_offset,
                                           transactions=per_client[path])
                    finally:
                        restore = not (args.notify_off and name.startswith("without NOTIFY"))
                        switch(conninfo, variants[name], enable=restore)
                    if path == "book_slot":
                        cursor += per_client[path] * args.clients
                    else:
                        cancel_offset += per_client[path] * args.clients
                    ratios[path][name].append(run["tps"] / base["tps"])
                    tps[path][name].append(run["tps"])
                    cpu[path][name].append(run["server_cpu_us"] + run["client_cpu_us"])
                    log(f"rep {rep + 1}: {path}: {name}: {run['tps']:.0f} tps, baseline {base['tps']:.0f}, "
                        f"{ratios[path][name][-1]:.2f} x baseline; CPU {cpu[path][name][-1]:.0f} us per "
                        f"transaction, baseline {base_cpu[-1]:.0f}")
    print(f"at {args.clients} clients, {sizes.slots:,} slots, medians of {args.reps} runs "
          f"({', '.join(f'{p}: {args.clients} x {per_client[p]:,} transactions' for p in paths)}; "
          f"baselines {args.seconds} s) "
          f"(ratio: to the pgbench -N run just before; CPU: server + pgbench microseconds per transaction, "
          f"baseline {median(base_cpu):.0f} us, and the baseline's CPU over the variant's)")
    for path in paths:
        print(f"{path}:")
        for name in names:
            print(f"  {name:50} {median(tps[path][name]):7.0f} tps  {median(ratios[path][name]):5.2f} x baseline  "
                  f"CPU {median(cpu[path][name]):5.0f} us  {median(base_cpu) / median(cpu[path][name]):5.2f} x")
    if args.out:
        args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                        "tps": tps, "ratios": ratios, "cpu_us": cpu, "baseline_cpu_us": base_cpu},
                                       indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
