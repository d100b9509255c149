"""gunicorn settings for bench/servers.py, which compares gunicorn with the production server (api/serving.py).

The same duties as api/serving.py has in production, so the comparison is fair:

- Metrics: every worker writes prometheus-client's multiprocess files; a
  worker that exits is marked dead so its gauges stop counting. With
  MEDBOOK_METRICS_BIND=host:port the master serves all workers' metrics on
  that separate port.
- Drain: on SIGTERM gunicorn stops accepting and lets in-flight requests
  finish (graceful timeout); each worker then closes its connection pool, so
  the database sees its sessions end instead of vanish.
"""

from __future__ import annotations

import os


def when_ready(server) -> None:
    bind = os.environ.get("MEDBOOK_METRICS_BIND")
    if not bind:
        return
    from prometheus_client import start_http_server

    from api.observability import registry

    host, _, port = bind.rpartition(":")
    start_http_server(int(port), addr=host or "127.0.0.1", registry=registry())
    server.log.info("metrics on http://%s/metrics", bind)


def worker_exit(server, worker) -> None:
    app = getattr(worker, "wsgi", None)
    database = getattr(app, "extensions", {}).get("medbook_db")
    if database is not None:
        database.close()


def child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
