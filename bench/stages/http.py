"""HTTP stages: the real app and a bare app under the production server, driven by wrk."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

from api import auth, cli

from .common import BENCH, FIRST_DAY, ROOT, Sizes, log
from .data import count_appointments, max_booked_slot
from .direct import pgbench


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


APPS = {"real": ("api", "create_app"), "bare": ("bench.bare_app", "create_app")}


def server_argv(spec: str, app: str, bind: str) -> tuple[list[str], dict[str, str]]:
    """The command line (and environment) of one server configuration serving app ("real" or "bare").

    spec "production" is the project's own command line (api.cli.server_argv),
    exactly what `medbook serve` runs; SERVER:WORKERSxTHREADS are the
    alternatives bench/servers.py compares it with.
    """
    module, factory = APPS[app]
    if spec == "production":
        argv = cli.server_argv(bind)
        argv[argv.index(cli.APP_TARGET)] = cli.APP_TARGET.replace("api:create_app", f"{module}:{factory}")
        return argv, {}
    server, _, shape = spec.partition(":")
    workers, _, threads = shape.partition("x")
    host, _, port = bind.rpartition(":")
    if server == "gunicorn":
        # gthread workers with the duties of production (bench/gunicorn_conf.py).
        return [sys.executable, "-m", "gunicorn", f"{module}:{factory}()", "--config", "python:bench.gunicorn_conf",
                "--bind", bind, "--workers", workers, "--worker-class", "gthread", "--threads", threads,
                "--graceful-timeout", "10", "--no-control-socket"], {}
    if server == "granian":
        return [sys.executable, "-m", "granian", "--interface", "wsgi", "--factory", "--host", host, "--port", port,
                "--workers", workers, "--blocking-threads", threads, "--no-ws", "--http", "1",
                "--log-level", "warning", f"{module}:{factory}"], {}
    if server == "uwsgi":
        uwsgi = Path(sys.executable).with_name("uwsgi")
        return [str(uwsgi), "--http11-socket", bind, "--master", "--processes", workers,
                "--threads", threads, "--lazy-apps", "--need-app", "--disable-logging", "--die-on-term",
                "--module", f"{module}:{factory}()"], {}
    raise SystemExit(f"bench: unknown server configuration {spec!r}")


@contextlib.contextmanager
def serving(spec: str, app: str, env: dict[str, str], workdir: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A server configuration (see server_argv) serving app, healthy, until the block ends.

    As `medbook serve` does, every worker writes its metrics to a fresh
    PROMETHEUS_MULTIPROC_DIR.
    """
    bind = f"127.0.0.1:{free_port()}"
    argv, extra = server_argv(spec, app, bind)
    metrics = Path(tempfile.mkdtemp(prefix="metrics-", dir=workdir))
    env = {**env, **extra, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}
    # The request log (stderr) is written, as in production, but not kept.
    errors = tempfile.TemporaryFile()
    # MEDBOOK_TREE (bench/servers.py --tree): serve the code of another source tree.
    cwd = env.get("MEDBOOK_TREE", ROOT)
    server = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors)  # noqa: S603
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
                raise SystemExit(f"bench: {spec} ({app}) did not become healthy:\n"
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
    with serving("production", "real", env, workdir) as (real, real_server), \
            serving("production", "bare", env, workdir) as (bare, _bare_server):
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
    return {"runs": runs, "worker_rss_bytes": rss, "server_argv": cli.server_argv("BIND")[1:]}, cursor
