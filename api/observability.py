"""What an operator sees: one structured log line per request, and Prometheus metrics.

Request log: request id, method, route template, status, duration and the
signed-in user's id; never a header value, a query string or a body (a token
can travel in either). MEDBOOK_LOG_FORMAT=json (default) or text.

Metrics (prometheus-client): request counts and latency by route template,
method and status; the connection pool's size and waiting requests; and the
outcome of every appointment change (booked, cancelled, or the problem code
that refused it). Under the server every worker writes to
PROMETHEUS_MULTIPROC_DIR (set by `medbook run`/`serve`), so a scrape sees all
workers. Metrics are off unless MEDBOOK_METRICS=on (served at /metrics on the
API's port, outside /v1, without a token: put it behind the network, not the
internet) or MEDBOOK_METRICS_BIND=host:port (served by the server's main process on
a separate port; api/serving.py).
"""

from __future__ import annotations

import logging
import os
import sys
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from pythonjsonlogger.json import JsonFormatter

request_log = logging.getLogger("medbook.request")

REQUESTS = Counter("medbook_http_requests_total", "HTTP requests answered.",
                   ["route", "method", "status"])
LATENCY = Histogram("medbook_http_request_duration_seconds", "Time to answer an HTTP request.",
                    ["route", "method"],
                    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
APPOINTMENT_CHANGES = Counter("medbook_appointment_changes_total",
                              "Appointment changes asked for over HTTP (book, cancel, ...), by outcome: "
                              "ok or the problem code that refused it.", ["route", "outcome"])
POOL = Gauge("medbook_db_pool_connections", "Database pool of the API: connections open, idle, "
             "and requests waiting for one (summed over live workers).", ["state"],
             multiprocess_mode="livesum")


# Per process: the labelled children in use (route templates and statuses are few), and the
# pool gauges' last written values, so a request writes only what changed.
_children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
_pool_written: dict[str, int] = {}


def _request_metrics(route: str, method: str, status: str) -> tuple[Counter, Histogram]:
    key = (route, method, status)
    found = _children.get(key)
    if found is None:
        found = _children[key] = (REQUESTS.labels(route, method, status), LATENCY.labels(route, method))
    return found


def _pool_gauges(stats: dict[str, int]) -> None:
    for state, key in (("size", "pool_size"), ("idle", "pool_available"), ("waiting", "requests_waiting")):
        value = stats.get(key, 0)
        if _pool_written.get(state) != value:
            POOL.labels(state).set(value)
            _pool_written[state] = value


def registry() -> CollectorRegistry:
    """Every worker's metrics under the server (multiprocess mode), else this process's."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return REGISTRY


def configure_logging(fmt: str) -> None:
    """One handler on the medbook loggers: JSON lines, or plain text for development."""
    logger = logging.getLogger("medbook")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "text":
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    else:
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                           rename_fields={"asctime": "time", "levelname": "level"}))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def init_app(app: Flask) -> None:
    if app.config["LOG_FORMAT"] not in {"json", "text"}:
        raise RuntimeError("MEDBOOK_LOG_FORMAT must be json or text")
    if app.config["METRICS"] not in {"on", "off"}:
        raise RuntimeError("MEDBOOK_METRICS must be on or off")
    configure_logging(app.config["LOG_FORMAT"])

    @app.before_request
    def _started():
        g.started = time.perf_counter()

    @app.after_request
    def _observed(response: Response) -> Response:
        duration = time.perf_counter() - g.get("started", time.perf_counter())
        route = request.url_rule.rule if request.url_rule else "unmatched"
        requests, latency = _request_metrics(route, request.method, str(response.status_code))
        requests.inc()
        latency.observe(duration)
        if (request.method == "POST" and route.startswith("/v1/appointments")) or \
                (request.method in ("POST", "PUT", "PATCH") and route.startswith("/fhir/R4/Appointment")):
            # A replay (Idempotency-Key) changed nothing: it is counted apart.
            outcome = "replayed" if response.headers.get("Idempotent-Replayed") else g.get("problem_code") or "ok"
            APPOINTMENT_CHANGES.labels(route, outcome).inc()
        _pool_gauges(app.extensions["medbook_db"].pool.get_stats())
        if request_log.isEnabledFor(logging.INFO):
            # request_log.info() without looking up the caller's file and line, which the
            # line does not carry: about 7 of the ~35 us a request's log line costs.
            request_log.handle(request_log.makeRecord(
                request_log.name, logging.INFO, __file__, 0, "request", (), None, extra={
                    "request_id": g.get("request_id"), "method": request.method, "route": route,
                    "status": response.status_code, "duration_ms": round(duration * 1000, 2),
                    "user_id": g.get("user_id")}))
        return response

    if app.config["METRICS"] == "on":
        @app.get("/metrics")
        def metrics():
            """Prometheus text format (MEDBOOK_METRICS=on; no token: keep it off the internet)."""
            return Response(generate_latest(registry()), mimetype=CONTENT_TYPE_LATEST)
