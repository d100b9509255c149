"""make bench: how close the booking service comes to what this machine can do.

Every throughput is compared with a baseline measured in the same run on the
same server, so the ratios mean something on a noisy, shared machine:

  1. pgbench's built-in simple-update script (-N) at each client count: the baseline;
  2. booking_api.book_slot() through a pgbench script, each transaction booking a distinct slot;
  3. booking_api.cancel_appointment() the same way;
  4. booking_api.list_available_slots() for one practitioner and date: p50, p99 and the plan;
  5. one hot slot: many clients released together, exactly one winner per round;
  5b. the practitioner directory (booking_api.list_practitioners): latency per filter, and its plans;
  6. HTTP: the real app under the production server (authentication on), driven by wrk,
     against a bare Flask endpoint under the same server calling the same function, and a
     direct book_slot run just before;
  7. resident memory of an API server worker after the HTTP run;
  8. the event log's cost: book_slot as shipped, with its NOTIFY on commit off, and without
     its event trigger, interleaved runs;
  9. webhooks: one delivery worker's throughput against a local receiver;
 10. cost as data grows: book_slot throughput, list_available_slots p99 and the hot
     queries' plans at 0.1 M, 1 M and 10 M slots, one database per size (smoke: tiny).

Runs are interleaved (baseline, booking, baseline, booking, ...) and each
figure is the median of --reps runs. Without DATABASE_URL a private
PostgreSQL starts in a temporary directory and is deleted afterwards; with it,
a database named medbook_bench is (re)created on that server and dropped at the
end. Results: a table on stdout, bench/results/bench-<UTC time>.json, the same
tables as Markdown for docs/PERFORMANCE.md (.md) and the plots (.png, -sizes.png).

    .venv/bin/python bench/run.py            # full size: 10,000 practitioners, 2,400,000 slots
    .venv/bin/python bench/run.py --smoke    # tiny sizes, a few seconds per stage (CI)
    .venv/bin/python bench/run.py --stages http --reps 3          # one stage
    .venv/bin/python bench/run.py --stages sizes --curve 0.1M,1M  # part of the size curve
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the project, for `api`

from stages.common import BENCH, FULL, ROOT, SLOTS_PER_DAY, SMOKE, Sizes, bench_database, libpq_env, log, pg_binary
from stages.data import load_data, prebook
from stages.direct import cancel_runs, direct_runs, list_latency, list_plan
from stages.directory import directory_stage
from stages.events import event_log_cost, webhook_throughput
from stages.hot_slot import hot_slot
from stages.http import http_runs
from stages.report import goals, markdown_tables, plot, ratios_within_run, report, summarise
from stages.sizes import label as curve_label
from stages.sizes import size_curve

from api import schema

STAGES = ("direct", "list", "hot", "directory", "events", "http", "sizes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and short runs (CI)")
    parser.add_argument("--reps", type=int, help="runs per figure (default: 3, smoke 1)")
    parser.add_argument("--seconds", type=int, help="seconds per throughput run (default: 10, smoke 1)")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help=f"comma-separated stages to run (default: all of {','.join(STAGES)}); "
                             "direct includes cancel_appointment")
    parser.add_argument("--clients", help="comma-separated client counts (default: 1,8,32; smoke 1,4)")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP stages")
    parser.add_argument("--curve", help="sizes of the size curve to run, by label (e.g. 0.1M,1M; default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the bench databases on DATABASE_URL")
    parser.add_argument("--out", type=Path, help="result file (default: bench/results/bench-<UTC time>.json)")
    args = parser.parse_args(argv)
    stages = set(args.stages.split(","))
    if stages - set(STAGES):
        parser.error(f"unknown stage(s): {', '.join(sorted(stages - set(STAGES)))}")
    if args.no_http:
        stages.discard("http")
    sizes = SMOKE if args.smoke else FULL
    overrides = {k: v for k, v in (("reps", args.reps), ("seconds", args.seconds), ("http_seconds", args.seconds))
                 if v is not None}
    if args.clients:
        overrides["clients"] = tuple(int(c) for c in args.clients.split(","))
    sizes = Sizes(**{**asdict(sizes), **overrides})
    if args.curve:
        wanted = args.curve.split(",")
        # A size answers to its label (100k, 1M) and to millions (0.1M, 1M).
        chosen = tuple(c for c in sizes.curve
                       if {curve_label(c[0] * c[1] * SLOTS_PER_DAY), f"{c[0] * c[1] * SLOTS_PER_DAY / 1e6:g}M"}
                       & set(wanted))
        unknown = set(wanted) - {name for c in sizes.curve for name in (
            curve_label(c[0] * c[1] * SLOTS_PER_DAY), f"{c[0] * c[1] * SLOTS_PER_DAY / 1e6:g}M")}
        if unknown or not chosen:
            parser.error(f"--curve: {sorted(unknown) or wanted} not among the sizes "
                         f"({', '.join(curve_label(p * d * SLOTS_PER_DAY) for p, d in sizes.curve)})")
        sizes = replace(sizes, curve=chosen)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or BENCH / "results" / f"bench-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="medbook-bench-work-"))
    at = "8" if 8 in sizes.clients else str(max(sizes.clients))
    started = time.monotonic()
    results: dict[str, Any] = {"profile": "smoke" if args.smoke else "full", "started": stamp,
                               "stages": [s for s in STAGES if s in stages]}

    with bench_database(args.keep) as conninfo:
        log("migrating the bench database")
        schema.migrate(conninfo)
        with psycopg.connect(conninfo) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            settings = dict(conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('shared_buffers', 'synchronous_commit', "
                "'fsync', 'max_connections', 'wal_level', 'jit')").fetchall())
        if stages - {"sizes"}:
            results["load_seconds"] = round(load_data(conninfo, sizes, parallel=max(1, min(4, os.cpu_count() or 1))))
            log(f"pgbench -i -s {sizes.pgbench_scale}")
            init = subprocess.run([pg_binary("pgbench"), "-i", "-q", "-s", str(sizes.pgbench_scale)],  # noqa: S603
                                  env=libpq_env(conninfo), capture_output=True, text=True, check=False)
            if init.returncode != 0:
                raise SystemExit(f"bench: pgbench -i failed:\n{init.stderr[-2000:]}")

        # Slot ids 1..limit serve bookings (direct, HTTP, hot slot) from a rising
        # cursor; the ones above limit are pre-booked for the cancellation runs:
        # one and a half times what the fastest booking run would have cancelled in
        # every run (a cancellation run has never been faster than the fastest
        # booking run; cancel_runs stops the bench if the reserve runs out), and
        # never more than half of the slots still free.
        total = limit = sizes.slots
        cursor = 0
        if "direct" in stages:
            log("direct: pgbench -N and book_slot")
            direct, cursor = direct_runs(conninfo, sizes, cursor, total)
            fastest = max(run["tps"] for runs in direct["book_slot"].values() for run in runs)
            reserve = min(int(1.5 * fastest * sizes.seconds * sizes.reps * len(sizes.clients)) + 1000,
                          (total - cursor) // 2)
            limit = total - reserve
            log(f"pre-booking {reserve:,} appointments for the cancellation runs")
            appt_offset = prebook(conninfo, sizes, limit, reserve)
            log("direct: cancel_appointment")
            cancels = cancel_runs(conninfo, sizes, appt_offset, appt_offset + reserve)
            results["direct"] = {
                "baseline_tps": summarise(direct["baseline"], "tps"),
                "book_slot_tps": summarise(direct["book_slot"], "tps"),
                "book_slot_latency_ms": summarise(direct["book_slot"], "latency_ms"),
                "book_slot_over_baseline": ratios_within_run(direct["book_slot"], direct["baseline"], "tps"),
                "cancel_tps": summarise(cancels, "tps"),
                "cancel_latency_ms": summarise(cancels, "latency_ms"),
                "cancel_over_baseline": {str(c): summarise(cancels, "tps")[str(c)]
                                         / summarise(direct["baseline"], "tps")[str(c)] for c in sizes.clients},
                "runs": {"baseline": direct["baseline"], "book_slot": direct["book_slot"], "cancel": cancels},
            }
        if "list" in stages:
            log("list_available_slots latency and plan")
            results["list_available_slots"] = list_latency(conninfo, sizes, workdir)
            results["list_available_slots"]["plan"] = list_plan(conninfo, sizes)
        if "hot" in stages:
            log(f"hot slot: {sizes.hot_clients} clients x {sizes.hot_rounds} rounds")
            results["hot_slot"] = asyncio.run(hot_slot(conninfo, sizes, cursor))
            cursor += sizes.hot_rounds
        if "directory" in stages:
            log("practitioner directory")
            results["directory"] = directory_stage(conninfo, sizes)
        if "events" in stages:
            log("events: book_slot as shipped, with the NOTIFY on commit off, and without the event trigger")
            event_cost, cursor = event_log_cost(conninfo, sizes, cursor, limit)
            log(f"webhooks: one worker, {sizes.webhook_events} events to a local receiver")
            results["events"] = {"book_slot": event_cost, "webhooks": webhook_throughput(conninfo, sizes)}
        if "http" in stages:
            log("HTTP: real app and bare app under the production server, wrk")
            http, cursor = http_runs(conninfo, sizes, cursor, limit, workdir)
            results["http"] = http_summary(http)
        if cursor >= limit:
            raise SystemExit("bench: the booking slots ran out")
        if "sizes" in stages:
            log("cost as data grows: " + ", ".join(curve_label(p * d * SLOTS_PER_DAY) for p, d in sizes.curve))
            results["size_curve"] = size_curve(conninfo, sizes, workdir, keep=args.keep)

    results.update({
        "elapsed_seconds": round(time.monotonic() - started),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_at_end": os.getloadavg()},
        "server_version": version, "server_settings": settings,
        "sizes": {**asdict(sizes), "slots": sizes.slots,
                      "curve_slots": [p * d * SLOTS_PER_DAY for p, d in sizes.curve]},
    })
    results["goals"] = goals(results, at)
    # Each goal's measured ratio at a glance (the goals hold the rest: names, thresholds, met).
    results["ratios"] = {g["key"]: g["measured"] for g in results["goals"] if isinstance(g["measured"], float)}
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    plots = plot(results, out.with_suffix(".png"), out.with_name(out.stem + "-sizes.png"))
    tables = out.with_suffix(".md")
    tables.write_text(markdown_tables(results))
    shutil.rmtree(workdir, ignore_errors=True)
    print(report(results))

    def shown(path: Path) -> str:
        return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)

    print(f"\nresults: {shown(out)}; tables for docs/PERFORMANCE.md: {shown(tables)}"
          + "".join(f"; plot: {shown(p)}" for p in plots))
    hot = results.get("hot_slot")
    if hot and (hot["rounds_without_exactly_one_winner"] or hot["other_errors"]):
        print("bench: the hot-slot rounds broke the one-winner rule", file=sys.stderr)
        return 1
    return 0


def http_summary(http: dict[str, Any]) -> dict[str, Any]:
    if "skipped" in http:
        return http
    r = http["runs"]
    return {
        "book_rps": summarise(r["http_book"], "rps"), "book_p50_ms": summarise(r["http_book"], "p50_ms"),
        "book_p99_ms": summarise(r["http_book"], "p99_ms"),
        "bare_rps": summarise(r["bare_book"], "rps"), "bare_p99_ms": summarise(r["bare_book"], "p99_ms"),
        "slots_rps": summarise(r["http_slots"], "rps"), "slots_p50_ms": summarise(r["http_slots"], "p50_ms"),
        "slots_p99_ms": summarise(r["http_slots"], "p99_ms"),
        "real_over_bare": ratios_within_run(r["http_book"], r["bare_book"], "rps"),
        "direct_book_tps": summarise(r["direct_book"], "rps"),
        "http_over_direct": ratios_within_run(r["http_book"], r["direct_book"], "rps"),
        "errors": {name: sum(sum(run["errors"].values()) for rs in runs.values() for run in rs)
                   for name, runs in r.items() if name != "direct_book"},
        "non_2xx": {name: sum(run["errors"].get("status", 0) for rs in runs.values() for run in rs)
                    for name, runs in r.items() if name != "direct_book"},
        "worker_rss_bytes": http["worker_rss_bytes"], "server_argv": http["server_argv"],
        "runs": r,
    }


if __name__ == "__main__":
    sys.exit(main())
