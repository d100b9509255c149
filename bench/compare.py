"""Before/after: book_slot, cancel_appointment and list_available_slots of two versions of the schema, in the same run.

One PostgreSQL server holds three databases: pgbench's own tables (the
baseline, `pgbench -N`), the booking schema as of a git revision (--before,
exported with `git archive`), and the booking schema of this working tree
(--after). Both booking databases get the same data (bench/stages/data.py)
and every round runs, back to back at the same client count: the baseline,
then each version (their order alternating between rounds). Each version's
throughput is divided by the baseline run of its own round, and the report
gives the median of those ratios and of the after/before ratios. After the
booking rounds, list_available_slots runs for 5 s at one client in each
version per round (a random practitioner and one of the days no booking
touched), and the report gives its p50 and p99 and the after/before p99.

    .venv/bin/python bench/compare.py --before main            # this tree against main
    .venv/bin/python bench/compare.py --before HEAD~1 --seconds 8 --reps 3

Without DATABASE_URL a private server starts in a temporary directory and is
deleted afterwards; with it, the three medbook_cmp_* databases are created on
that server and dropped at the end. Durability stays on; nothing is disabled.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api import schema  # noqa: E402
from bench.stages.common import FULL, SLOTS_PER_DAY, Sizes, libpq_env, log, median, pg_binary, server_settings  # noqa: E402
from bench.stages.cpu import client_seconds, postmaster_pid, server_seconds, settle  # noqa: E402
from bench.stages.data import load_data, max_booked_slot, prebook  # noqa: E402
from bench.stages.direct import counted_run, list_latency, pgbench, warm_up  # noqa: E402


def measured(postmaster: int | None, run, conninfo: str, *args, **kwargs) -> dict:
    """A pgbench run, with the server's and pgbench's CPU microseconds per transaction."""
    settle(conninfo)
    server, client = server_seconds(postmaster), client_seconds()
    result = run(conninfo, *args, **kwargs)
    settle(conninfo)
    result["server_cpu_us"] = (server_seconds(postmaster) - server) * 1e6 / result["processed"]
    result["client_cpu_us"] = (client_seconds() - client) * 1e6 / result["processed"]
    return result


DATABASES = {"base": "medbook_cmp_base", "before": "medbook_cmp_before", "after": "medbook_cmp_after"}


@contextlib.contextmanager
def server() -> Iterator[str]:
    """Conninfo of a maintenance database on DATABASE_URL's server, or on a private one."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from api import pgserver

    tmp = Path(tempfile.mkdtemp(prefix="medbook-compare-"))
    log(f"starting a private PostgreSQL in {tmp}")
    try:
        yield pgserver.start(tmp / "pgdata", dbname="postgres", keep=False, settings=server_settings())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def recreate(admin: str, names: list[str], drop_only: bool = False) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            if not drop_only:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def export_db_dir(revision: str, into: Path) -> Path:
    """db/ as of a git revision, unpacked under into."""
    archive = subprocess.run(["git", "archive", revision, "db"], cwd=ROOT, capture_output=True,  # noqa: S603, S607
                             check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "db"


def migrate_with(conninfo: str, db_dir: Path) -> None:
    """schema.migrate() with the migrations and functions of db_dir."""
    saved = schema.MIGRATIONS_DIR, schema.FUNCTIONS_DIR
    schema.MIGRATIONS_DIR, schema.FUNCTIONS_DIR = db_dir / "migrations", db_dir / "functions"
    try:
        schema.migrate(conninfo)
    finally:
        schema.MIGRATIONS_DIR, schema.FUNCTIONS_DIR = saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", required=True, help="git revision of the 'before' schema (e.g. main, HEAD~1)")
    parser.add_argument("--after", default=None, help="git revision of the 'after' schema (default: the working tree)")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--practitioners", type=int, default=4_000)
    parser.add_argument("--days", type=int, default=10)
    parser.add_argument("--no-cancel", action="store_true", help="book_slot only")
    parser.add_argument("--sql", action="append", default=[],
                        help="a statement run in both booking databases after migrating (repeatable), e.g. "
                             "\"UPDATE booking.event_log_settings SET notify_on_commit = false\"")
    parser.add_argument("--keep", action="store_true", help="keep the medbook_cmp_* databases (DATABASE_URL only)")
    parser.add_argument("--out", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    sizes = Sizes(**{**asdict(FULL), "practitioners": args.practitioners, "days": args.days,
                     "clients": (args.clients,), "reps": args.reps, "seconds": args.seconds})
    versions = ("before", "after")
    runs: dict[str, dict[str, list[dict]]] = {"book": {v: [] for v in ("base", *versions)},
                                              "cancel": {v: [] for v in ("base", *versions)}}
    runs_list: dict[str, list[dict]] = {v: [] for v in versions}
    tmp = Path(tempfile.mkdtemp(prefix="medbook-compare-src-"))
    try:
        dirs = {"before": export_db_dir(args.before, tmp / "before"),
                "after": export_db_dir(args.after, tmp / "after") if args.after else ROOT / "db"}
        with server() as admin:
            names = list(DATABASES.values())
            recreate(admin, names)
            conninfo = {k: make_conninfo(admin, dbname=v) for k, v in DATABASES.items()}
            try:
                init = subprocess.run([pg_binary("pgbench"), "-i", "-q", "-s", str(sizes.pgbench_scale)],  # noqa: S603
                                      env=libpq_env(conninfo["base"]), capture_output=True, text=True, check=False)
                if init.returncode:
                    raise SystemExit(f"compare: pgbench -i failed:\n{init.stderr[-2000:]}")
                for v in versions:
                    log(f"{v}: migrating ({args.before if v == 'before' else args.after or 'working tree'}) "
                        f"and loading {sizes.slots:,} slots")
                    migrate_with(conninfo[v], dirs[v])
                    with psycopg.connect(conninfo[v], autocommit=True) as conn:
                        for statement in args.sql:
                            conn.execute(statement)
                    load_data(conninfo[v], sizes)
                cursor = {v: warm_up(conninfo[v], sizes, clients=args.clients) for v in versions}
                postmaster = postmaster_pid(conninfo["base"])
                for rep in range(args.reps):
                    order = versions if rep % 2 == 0 else versions[::-1]
                    base = measured(postmaster, pgbench, conninfo["base"], ["-N"], clients=args.clients,
                                    seconds=args.seconds)
                    runs["book"]["base"].append(base)
                    line = [f"baseline {base['tps']:6.0f} ({base['server_cpu_us'] + base['client_cpu_us']:.0f} us)"]
                    for v in order:
                        r = measured(postmaster, counted_run, conninfo[v], sizes, "book_slot.sql", "booked",
                                     clients=args.clients, offset=cursor[v])
                        runs["book"][v].append(r)
                        cursor[v] = max_booked_slot(conninfo[v], sizes.slots)
                        line.append(f"{v} {r['tps']:6.0f} ({r['tps'] / base['tps']:.2f}, "
                                    f"{r['server_cpu_us'] + r['client_cpu_us']:.0f} us)")
                    log(f"book_slot rep {rep + 1}/{args.reps}: " + ", ".join(line))
                # The available slots of a random practitioner and day, on the days no booking touched
                # (slot ids are time-major: the bookings filled whole days from the first).
                skip_days = -(-max(cursor.values()) // (sizes.practitioners * SLOTS_PER_DAY))
                if skip_days >= sizes.days:
                    raise SystemExit("compare: the bookings reached the last day; raise --days")
                for rep in range(args.reps):
                    line = []
                    for v in versions if rep % 2 == 0 else versions[::-1]:
                        r = list_latency(conninfo[v], replace(sizes, reps=1), tmp / f"list-{v}-{rep}",
                                         skip_days=skip_days)
                        runs_list[v].append({"p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"]})
                        line.append(f"{v} p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms")
                    log(f"list_available_slots rep {rep + 1}/{args.reps}: " + "; ".join(line))
                if not args.no_cancel:
                    fastest = max(r["tps"] for v in versions for r in runs["book"][v])
                    # Enough for the fastest booking rate three times over, but at most half the free slots.
                    reserve = min(int(3 * fastest * args.seconds * args.reps) + 1000,
                                  (sizes.slots - max(cursor.values())) // 2)
                    offsets = {}
                    for v in versions:
                        limit = sizes.slots - reserve
                        if limit <= cursor[v]:
                            raise SystemExit("compare: too few slots for the cancellation runs; raise --days")
                        offsets[v] = prebook(conninfo[v], sizes, limit, reserve)
                    # A fixed share of the reserve per run (pgbench -t): equal work for both versions,
                    # and no run can reach past the pre-booked appointments however fast it goes.
                    per_client = reserve // (args.reps * args.clients)
                    for rep in range(args.reps):
                        order = versions if rep % 2 == 0 else versions[::-1]
                        base = measured(postmaster, pgbench, conninfo["base"], ["-N"], clients=args.clients,
                                    seconds=args.seconds)
                        runs["cancel"]["base"].append(base)
                        line = [f"baseline {base['tps']:6.0f} ({base['server_cpu_us'] + base['client_cpu_us']:.0f} us)"]
                        for v in order:
                            r = measured(postmaster, counted_run, conninfo[v], sizes, "cancel_appointment.sql",
                                         "cancelled", clients=args.clients, offset=offsets[v],
                                         transactions=per_client)
                            runs["cancel"][v].append(r)
                            offsets[v] += per_client * args.clients
                            line.append(f"{v} {r['tps']:6.0f} ({r['tps'] / base['tps']:.2f}, "
                                    f"{r['server_cpu_us'] + r['client_cpu_us']:.0f} us)")
                        log(f"cancel rep {rep + 1}/{args.reps}: " + ", ".join(line))
            finally:
                if not args.keep or not os.environ.get("DATABASE_URL"):
                    recreate(admin, names, drop_only=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    summary: dict[str, dict[str, float]] = {}
    for what, r in runs.items():
        if not r["base"]:
            continue
        s = {"baseline_tps": median([x["tps"] for x in r["base"]])}
        for v in versions:
            s[f"{v}_tps"] = median([x["tps"] for x in r[v]])
            s[f"{v}_over_baseline"] = median([x["tps"] / b["tps"] for x, b in zip(r[v], r["base"], strict=True)])
        s["after_over_before"] = median([a["tps"] / b["tps"] for a, b in zip(r["after"], r["before"], strict=True)])
        # CPU per transaction (server + pgbench): the ratio a CPU-bound run would show, less moved by other load.
        for v in ("base", *versions):
            s[f"{v}_server_cpu_us"] = median([x["server_cpu_us"] for x in r[v]])
            s[f"{v}_cpu_us"] = median([x["server_cpu_us"] + x["client_cpu_us"] for x in r[v]])
        for v in versions:
            s[f"{v}_cpu_ratio"] = s["base_cpu_us"] / s[f"{v}_cpu_us"]
        summary[what] = s
    if runs_list["after"]:
        summary["list"] = {f"{v}_{q}": median([x[q] for x in runs_list[v]])
                           for v in versions for q in ("p50_ms", "p99_ms")}
        summary["list"]["after_over_before_p99"] = median(
            [a["p99_ms"] / b["p99_ms"] for a, b in zip(runs_list["after"], runs_list["before"], strict=True)])
    title = (f"{args.before} -> {args.after or 'working tree'}: {args.clients} clients, {args.seconds} s runs, "
             f"medians of {args.reps}, {sizes.slots:,} slots" + "".join(f"; {s}" for s in args.sql))
    print(title)
    for what, s in summary.items():
        if what == "list":
            print(f"  {'list_available_slots':19} p50 / p99 ms, one client: before {s['before_p50_ms']:.3f} / "
                  f"{s['before_p99_ms']:.3f} | after {s['after_p50_ms']:.3f} / {s['after_p99_ms']:.3f} "
                  f"| after/before p99 {s['after_over_before_p99']:.2f}")
            continue
        name = "book_slot" if what == "book" else "cancel_appointment"
        print(f"  {name:19} baseline {s['baseline_tps']:6.0f} tps | before {s['before_tps']:6.0f} tps "
              f"{s['before_over_baseline']:.2f}x | after {s['after_tps']:6.0f} tps {s['after_over_baseline']:.2f}x "
              f"| after/before {s['after_over_before']:.2f}")
        print(f"  {'':19} CPU us per transaction (server + pgbench): baseline {s['base_cpu_us']:5.0f} | "
              f"before {s['before_cpu_us']:5.0f} ({s['before_cpu_ratio']:.2f}x) | "
              f"after {s['after_cpu_us']:5.0f} ({s['after_cpu_ratio']:.2f}x) | "
              f"server only: {s['base_server_cpu_us']:.0f} / {s['before_server_cpu_us']:.0f} / "
              f"{s['after_server_cpu_us']:.0f}")
    if args.out:
        args.out.write_text(json.dumps({"title": title, "args": {k: str(v) for k, v in vars(args).items()},
                                        "summary": summary, "runs": {**runs, "list": runs_list}}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
