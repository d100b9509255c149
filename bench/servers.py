"""Which WSGI server, and how many workers and threads, serve the booking API best on this machine.

A diagnostic for docs/PERFORMANCE.md ("What was tuned, and why"), not part of
`make bench`: it loads a bench database, starts every server configuration
named on the command line at once (each serving the real app, or the bare app
of bench/bare_app.py), and then, round after round, runs a direct book_slot
pgbench run followed by one wrk run against each configuration, all at the
same connection count. Every HTTP figure is reported as a ratio to the direct
run of its own round; medians over the rounds.

    .venv/bin/python bench/servers.py                          # the default candidates
    .venv/bin/python bench/servers.py --configs gunicorn:2x4 granian:2x4 --apps real,bare
    .venv/bin/python bench/servers.py --env MEDBOOK_THREADS=4 --env MEDBOOK_THREADS=8
    git archive HEAD~1 | tar -x -C /tmp/before
    .venv/bin/python bench/servers.py --tree before=/tmp/before --tree after=.

A configuration is SERVER:WORKERSxTHREADS, SERVER one of gunicorn (gthread),
granian (WSGI, blocking threads) and uwsgi (pyuwsgi, --http11-socket). --env
NAME=VALUE variants run the production configuration once per value instead,
and --tree LABEL=DIR variants run it from another source tree (a checkout of
an earlier commit), for same-run before/after ablations of a change.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import tempfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api import auth, schema  # noqa: E402
from bench.stages.common import FIRST_DAY, FULL, bench_database, log, median  # noqa: E402
from bench.stages.data import count_appointments, load_data, max_booked_slot  # noqa: E402
from bench.stages.direct import pgbench  # noqa: E402
from bench.stages.http import ensure_wrk, serving, wrk  # noqa: E402

DEFAULT_CONFIGS = ["gunicorn:2x4", "granian:2x4", "uwsgi:2x4", "granian:1x8", "gunicorn:4x2"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, help="SERVER:WORKERSxTHREADS ...")
    parser.add_argument("--env", action="append", default=[],
                        help="'NAME=VALUE [NAME=VALUE ...]': serve the production configuration with these settings")
    parser.add_argument("--tree", action="append", default=[],
                        help="LABEL=DIR: serve the production configuration from the source tree DIR")
    parser.add_argument("--apps", default="real", help="real, bare or real,bare")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--practitioners", type=int, default=6_000, help="slots: practitioners x 120")
    args = parser.parse_args(argv)
    wrk_bin = ensure_wrk()
    if wrk_bin is None:
        raise SystemExit("servers: wrk is needed (apt-get install wrk)")
    sizes = replace(FULL, practitioners=args.practitioners)
    apps = args.apps.split(",")
    secret = secrets.token_urlsafe(48)
    people = list(range(sizes.practitioners + 1, sizes.practitioners + 1 + 64))
    tokens = [auth.mint(secret, u, lifetime=timedelta(hours=6)) for u in people]
    common = {"BENCH_TOKENS": ",".join(tokens), "BENCH_USERS": ",".join(map(str, people)),
              "BENCH_PRACTITIONERS": str(sizes.practitioners),
              "BENCH_DATES": ",".join(str(FIRST_DAY + timedelta(days=d)) for d in range(sizes.days))}
    # (label, server spec, app, extra environment)
    variants: list[tuple[str, str, str, dict[str, str]]] = []
    if args.tree:
        for item in args.tree:
            name, _, tree = item.partition("=")
            path = str(Path(tree).resolve())
            for app in apps:
                variants.append((f"{app} {name}", "production", app, {"PYTHONPATH": path, "MEDBOOK_TREE": path}))
    elif args.env:
        for item in args.env:  # "NAME=VALUE [NAME=VALUE ...]"
            extra = dict(pair.partition("=")[::2] for pair in item.split())
            for app in apps:
                variants.append((f"{app} {item}", "production", app, extra))
    else:
        variants = [(f"{app} {spec}", spec, app, {}) for spec in args.configs for app in apps]
    workdir = Path(tempfile.mkdtemp(prefix="medbook-servers-"))
    with bench_database(keep=False) as conninfo:
        schema.migrate(conninfo)
        load_data(conninfo, sizes)
        env = {**os.environ, "DATABASE_URL": conninfo, "MEDBOOK_JWT_SECRET": secret}
        runs: dict[str, list[dict]] = {label: [] for label, *_ in variants}
        direct_runs: list[float] = []
        with contextlib.ExitStack() as stack:
            bases = {}
            for label, spec, app, extra in variants:
                bases[label] = stack.enter_context(serving(spec, app, {**env, **extra}, workdir))[0]
            cursor = 0
            for rnd in range(args.rounds):
                direct = pgbench(conninfo, [], clients=args.connections, seconds=args.seconds, script="book_slot.sql",
                                 defines={"n": 0, "offset": cursor, "clients": args.connections,
                                          "patient_user_base": sizes.practitioners, "patients": sizes.patients})
                direct_runs.append(direct["tps"])
                cursor = max_booked_slot(conninfo, sizes.slots)
                line = [f"direct {direct['tps']:.0f}"]
                # A different order each round, so no variant always runs first after the direct run.
                shift = rnd % len(variants)
                for label, *_ in variants[shift:] + variants[:shift]:
                    before = count_appointments(conninfo, "booked")
                    result = wrk(wrk_bin, bases[label], {**common, "BENCH_MODE": "book",
                                                         "BENCH_SLOT_BASE": str(cursor)},
                                 connections=args.connections, seconds=args.seconds, workdir=workdir)
                    made = count_appointments(conninfo, "booked") - before
                    if result["errors"] or made < result["requests"]:
                        log(f"{label}: errors {result['errors']}, {result['requests']} requests, {made} made")
                    cursor = max_booked_slot(conninfo, sizes.slots)
                    result["over_direct"] = result["rps"] / direct["tps"]
                    runs[label].append(result)
                    line.append(f"{label} {result['rps']:.0f}")
                log(f"round {rnd + 1}/{args.rounds}: " + ", ".join(line))
                if cursor > sizes.slots * 0.9:
                    raise SystemExit("servers: the slots ran out; raise --practitioners")
    print(f"\n{args.connections} connections, {args.seconds} s runs, medians of {args.rounds} rounds; "
          f"direct book_slot median {median(direct_runs):.0f} tps ({', '.join(f'{t:.0f}' for t in direct_runs)})")
    first = variants[0][0]
    print(f"{'':36} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'/direct':>8} {'/first':>7}   /first per round")
    for label, results in runs.items():
        against_first = [r["rps"] / f["rps"] for r, f in zip(results, runs[first], strict=True)]
        print(f"{label:36} {median([r['rps'] for r in results]):7.0f} {median([r['p50_ms'] for r in results]):7.1f} "
              f"{median([r['p99_ms'] for r in results]):7.1f} {median([r['over_direct'] for r in results]):8.2f} "
              f"{median(against_first):7.2f}   " + " ".join(f"{x:.2f}" for x in against_first))
    print(f"(/first: per-round ratio to {first!r}, median over rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
