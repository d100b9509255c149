"""The production HTTP server: granian serving the WSGI app (`medbook run` and `medbook serve`).

    python -m api.serving HOST:PORT [MODULE:FACTORY]     (default api:create_app)

granian parses HTTP in Rust and hands each request to one of a worker's
blocking threads; on the booking request it served about 1.6 times the
requests per second of gunicorn's gthread workers with the same workers and
threads, and more than uWSGI (docs/PERFORMANCE.md, "What was tuned, and why").

- Workers and threads: MEDBOOK_WORKERS (default 2) processes, each with
  MEDBOOK_THREADS (default 4) threads calling the app, and its own pool.
- Drain: on SIGTERM or SIGINT the server closes its listening socket, each
  worker finishes its in-flight requests (for up to MEDBOOK_GRACEFUL_TIMEOUT
  seconds, default 10) and closes its connection pool, so the database sees
  its sessions end instead of vanish.
- Metrics: every worker writes prometheus-client's multiprocess files
  (PROMETHEUS_MULTIPROC_DIR, set by `medbook run`/`serve`); a worker that
  starts removes the live gauges of workers that are gone (a crashed worker
  is replaced). With MEDBOOK_METRICS_BIND=host:port the main process serves
  all workers' metrics on that separate port.
- No access log: the app logs every request itself (api/observability.py).
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing.util
import os
import re
import sys
from pathlib import Path
from typing import Any

DEFAULT_TARGET = "api:create_app"
log = logging.getLogger("medbook.serving")


def _load(target: str) -> Any:
    """In a worker: builds the app from MODULE:FACTORY and prepares the worker's exit."""
    module, _, factory = target.partition(":")
    app = getattr(importlib.import_module(module), factory)()
    forget_dead_workers()
    database = getattr(app, "extensions", {}).get("medbook_db")
    if database is not None:
        # Runs when the worker process ends normally (after its in-flight requests).
        multiprocessing.util.Finalize(None, database.close, exitpriority=10)
    return app


_LIVE_GAUGE = re.compile(r"gauge_live\w*_(\d+)\.db")


def forget_dead_workers() -> None:
    """Removes the live gauges (the pool gauge) of worker processes that no longer exist."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        return
    from prometheus_client import multiprocess

    pids = {int(m.group(1)) for f in Path(path).glob("gauge_live*.db") if (m := _LIVE_GAUGE.fullmatch(f.name))}
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, path)
        except PermissionError:  # alive, another user's
            pass


def _start_metrics(bind: str) -> None:
    from prometheus_client import start_http_server

    from api.observability import registry

    host, _, port = bind.rpartition(":")
    start_http_server(int(port), addr=host or "127.0.0.1", registry=registry())
    log.info("metrics on http://%s/metrics", bind)


def build(bind: str, target: str = DEFAULT_TARGET) -> Any:
    """The granian server for bind (HOST:PORT), not started."""
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    host, _, port = bind.rpartition(":")
    server = Server(
        target,
        address=host or "127.0.0.1",
        port=int(port),
        interface=Interfaces.WSGI,
        workers=int(os.environ.get("MEDBOOK_WORKERS", "2")),
        blocking_threads=int(os.environ.get("MEDBOOK_THREADS", "4")),
        http=HTTPModes.http1,
        websockets=False,
        respawn_failed_workers=True,
        workers_kill_timeout=max(1, int(float(os.environ.get("MEDBOOK_GRACEFUL_TIMEOUT", "10")))),
        log_level=LogLevels.warning,
    )
    metrics_bind = os.environ.get("MEDBOOK_METRICS_BIND")
    if metrics_bind:
        server.on_startup(lambda: _start_metrics(metrics_bind))
    return server


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2 or ":" not in args[0]:
        print("usage: python -m api.serving HOST:PORT [MODULE:FACTORY]", file=sys.stderr)
        return 2
    from .observability import configure_logging

    configure_logging(os.environ.get("MEDBOOK_LOG_FORMAT", "json"))
    server = build(args[0], *args[1:])
    server.serve(target_loader=_load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
