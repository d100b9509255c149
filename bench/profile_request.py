"""Where the time of one booking request goes: a profile of POST /v1/appointments.

Calls the WSGI apps in-process (no server, no sockets), one request at a time,
against a small bench database, and prints:
  * microseconds per booking: booking_api.book_slot() through the pool alone, the bare Flask
    app (bench/bare_app.py), and the real app (authentication on);
  * a pyinstrument profile of the real app.

    .venv/bin/python bench/profile_request.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# As under `medbook serve`: metrics in multiprocess files (prometheus-client reads
# this when it is imported), the JSON request log written (here to /dev/null).
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="medbook-profile-metrics-"))

import psycopg  # noqa: E402

from api import auth, create_app, observability, schema  # noqa: E402
from bench import bare_app  # noqa: E402
from bench.stages.common import SMOKE, Sizes, bench_database, median  # noqa: E402
from bench.stages.data import load_data  # noqa: E402

# Bookings before the measured ones (then ANALYZE): 400 were too few for the planner to
# see the appointments table as more than empty (bench/stages/sizes.py).
WARM_UP = 2_000


def environ(body: bytes, token: str, user: int) -> dict:
    return {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/v1/appointments", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        "HTTP_AUTHORIZATION": f"Bearer {token}", "HTTP_X_USER_ID": str(user), "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.input": io.BytesIO(body), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="bookings per measurement")
    args = parser.parse_args(argv)
    n = args.requests
    sizes = Sizes(**{**asdict(SMOKE), "practitioners": 1000, "days": 4})
    if sizes.slots < 4 * n + WARM_UP + 100:
        raise SystemExit("profile: too many requests for the slots loaded")
    with contextlib.ExitStack() as stack:
        conninfo = stack.enter_context(bench_database(keep=False))
        schema.migrate(conninfo)
        load_data(conninfo, sizes)
        devnull = stack.enter_context(open(os.devnull, "w"))
        with contextlib.redirect_stderr(devnull):
            observability.configure_logging("json")
        # The log's writer thread writes what it holds before its stream closes (the stack unwinds last in, first out).
        for handler in logging.getLogger("medbook").handlers:
            stack.callback(handler.close)
        secret = secrets.token_urlsafe(48)
        os.environ["DATABASE_URL"] = conninfo
        real = create_app({"DATABASE_URL": conninfo, "JWT_SECRET": secret})
        bare = bare_app.create_app()
        db = real.extensions["medbook_db"]
        user = sizes.practitioners + 1
        token = auth.mint(secret, user, lifetime=timedelta(hours=1))
        next_slot = iter(range(1, sizes.slots + 1))

        def status_of(app: Callable) -> Callable[[], None]:
            def one() -> None:
                body = json.dumps({"slot_id": next(next_slot)}).encode()
                seen: list[str] = []
                chunks = app(environ(body, token, user), lambda status, headers, exc_info=None: seen.append(status))
                b"".join(chunks)
                if not seen or not seen[0].startswith("201"):
                    raise SystemExit(f"profile: unexpected response {seen}")
            return one

        def pool_only() -> None:
            db.call_one("book_slot", user, next(next_slot))

        ways = {"booking_api.book_slot() through the pool (api.db)": pool_only,
                "bare Flask app (WSGI, in-process)": status_of(bare),
                "real app (WSGI, in-process, JWT on)": status_of(real)}
        for one in ways.values():
            for _ in range(WARM_UP // len(ways)):
                one()  # warm: pool connections, prepared statements
        # A freshly loaded appointments table is empty to the planner: until it is analyzed,
        # the plans each connection caches read every appointment made so far, and each
        # booking is slower than the one before (bench/stages/sizes.py). ANALYZE invalidates
        # them; the next calls plan again and prepare again.
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("ANALYZE booking.appointments, booking.appointment_history, booking.events")
        for one in ways.values():
            for _ in range(20):
                one()
        # Interleaved rounds, median per way: the machine is shared and noisy.
        # Wall time includes the database; CPU time of this process is the Python side alone.
        wall: dict[str, list[float]] = {name: [] for name in ways}
        cpu: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(5):
            for name, one in ways.items():
                started, started_cpu = time.perf_counter(), time.process_time()
                for _ in range(n // 5):
                    one()
                wall[name].append((time.perf_counter() - started) / (n // 5) * 1e6)
                cpu[name].append((time.process_time() - started_cpu) / (n // 5) * 1e6)
        timings = {name: (median(wall[name]), median(cpu[name])) for name in ways}

        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0001)
        one = status_of(real)
        profiler.start()
        for _ in range(n):
            one()
        profiler.stop()
        db.close()

    print("microseconds per booking, one at a time (medians of 5 interleaved rounds):")
    print(f"  {'':40} {'wall':>8} {'Python CPU':>11}")
    for name, (micros, cpu_micros) in timings.items():
        print(f"  {name:40} {micros:8.0f} {cpu_micros:11.0f}")
    print()
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
