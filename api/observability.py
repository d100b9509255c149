"""What an operator sees: one structured log line per request, and Prometheus metrics.

Request log: request id, method, route template, status, duration and the
signed-in user's id; never a header value, a query string or a body (a token
can travel in either). MEDBOOK_LOG_FORMAT=json (default) or text. The request
id is made here too (X-Request-Id, and the request_id of a problem). A request
only queues its line's fields; a writer thread per process formats what was
queued and writes it in one go every MEDBOOK_LOG_FLUSH_MS (default 50), and
writes whatever is left when the process ends normally (a server worker after
its drain, a CLI at exit), so a SIGTERM loses no line.

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

import atexit
import json
import logging
import logging.handlers
import multiprocessing.util
import os
import queue
import sys
import threading
import time
import weakref

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
_changes: dict[tuple[str, str], Counter] = {}


def _request_metrics(route: str, method: str, status: str) -> tuple[Counter, Histogram]:
    key = (route, method, status)
    found = _children.get(key)
    if found is None:
        found = _children[key] = (REQUESTS.labels(route, method, status), LATENCY.labels(route, method))
    return found


def _appointment_change(route: str, outcome: str) -> Counter:
    key = (route, outcome)
    found = _changes.get(key)
    if found is None:
        found = _changes[key] = APPOINTMENT_CHANGES.labels(route, outcome)
    return found


# uuid.UUID's version 4 and RFC 4122 variant bits, cleared then set.
_UUID4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID4_SET = (0x8000 << 48) | (4 << 76)


def request_id() -> str:
    """A new request id: uuid.uuid4().hex, the same 32 hex digits, without building the UUID object."""
    return f"{int.from_bytes(os.urandom(16)) & _UUID4_CLEAR | _UUID4_SET:032x}"


def _sole_writer() -> BackgroundHandler | None:
    """The BackgroundHandler that alone receives the request log's records, if that is the configuration."""
    medbook = request_log.parent
    if request_log.handlers or request_log.filters or not request_log.propagate or medbook is None \
            or medbook.filters or medbook.propagate or len(medbook.handlers) != 1:
        return None
    handler = medbook.handlers[0]
    return handler if type(handler) is BackgroundHandler else None


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


_STOP = object()
REQUEST_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


class RequestJsonFormatter(JsonFormatter):
    """python-json-logger's JSON lines, plus format_request(): a request line without a LogRecord.

    format_request(created, fields) returns what format() returns for the
    request record with those fields (tests/test_observability.py holds them
    to it), for about a third of the CPU: no LogRecord, no search of the
    record's attributes for extra fields, the date formatted once a second.
    """

    def __init__(self) -> None:
        super().__init__(REQUEST_LOG_FORMAT, rename_fields={"asctime": "time", "levelname": "level"})
        self._second: tuple[int, str] = (-1, "")
        # The fields are str, int, float or None, which json_default is never asked about:
        # one encoder with the formatter's settings serves every line.
        self._encode = json.JSONEncoder(ensure_ascii=self.json_ensure_ascii, indent=self.json_indent).encode

    def format_request(self, created: float, fields: dict) -> str:
        second = int(created)
        cached, date = self._second
        if cached != second:
            date = time.strftime(self.default_time_format, self.converter(created))
            self._second = (second, date)
        return self._encode({
            "time": self.default_msec_format % (date, _msecs(created)), "level": "INFO",
            "name": request_log.name, "message": "request", **fields})


def _msecs(created: float) -> int:
    # As LogRecord computes it from the same timestamp.
    return int((created - int(created)) * 1000)


def request_record(created: float, fields: dict) -> logging.LogRecord:
    """The request log record of a request that ended at created (epoch seconds) with fields."""
    record = request_log.makeRecord(request_log.name, logging.INFO, __file__, 0, "request", (), None, extra=fields)
    record.created = created
    record.msecs = float(_msecs(created))
    record.relativeCreated = (created - logging._startTime) * 1000  # as LogRecord computes it
    return record


class BackgroundHandler(logging.handlers.QueueHandler):
    """Queues records for a writer thread that formats them and writes them through target in batches.

    A request pays for putting its record on a queue (well under a microsecond);
    formatting and the write happen on the writer thread, about once every
    `interval` seconds for everything queued meanwhile (one write and one flush
    per batch instead of per line). close() (at exit, and when a server worker's
    process ends) writes everything queued before it returns; a record logged
    after close() is written at once, in the caller's thread. A forked child (a
    server worker) starts with an empty queue and its own writer thread, even if
    the parent had closed the handler (granian's logging setup closes every
    handler in its main process before it forks the workers).
    """

    def __init__(self, target: logging.StreamHandler, interval: float = 0.05) -> None:
        super().__init__(queue.SimpleQueue())
        self.target = target
        self.interval = interval
        self._writer: threading.Thread | None = None
        self._closed = False
        self._wake = threading.Event()
        self._starting = threading.Lock()
        me = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (handler := me()) is not None and handler._forked())
        atexit.register(lambda: (handler := me()) is not None and handler.close())

    def _forked(self) -> None:
        self.queue = queue.SimpleQueue()
        self._writer = None
        self._closed = False
        self._wake = threading.Event()
        self._starting = threading.Lock()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        # The record stays in this process (its traceback, if any, with it): no copy, and
        # no formatting until the writer's turn.
        return record

    def emit(self, record: logging.LogRecord) -> None:
        if self._closed:
            self.target.handle(record)
            return
        if self._writer is None:
            self._start()
        self.queue.put_nowait(self.prepare(record))

    def line_for_request(self, created: float, fields: dict) -> bool:
        """Queues a request log line without a LogRecord; False if it must go through logging instead.

        Only when the request line would reach no handler but this one (nothing
        attached to medbook.request, no filters) and the target writes JSON
        lines: the writer then formats it with RequestJsonFormatter, exactly as
        a record with these fields would be.
        """
        if self._closed or not self.fast or self.filters or self.target.filters:
            return False
        if self._writer is None:
            self._start()
        self.queue.put_nowait((created, fields))
        return True

    @property
    def fast(self) -> bool:
        return isinstance(self.target.formatter, RequestJsonFormatter) and self.level <= logging.INFO \
            and self.target.level <= logging.INFO

    def _start(self) -> None:
        with self._starting:
            if self._writer is not None:
                return
            writer = threading.Thread(target=self._run, name="medbook-log-writer", daemon=True)
            writer.start()
            self._writer = writer
        # A server worker ends through multiprocessing, which runs its finalizers (exit
        # priority 0: after the database pool closes) but not atexit.
        multiprocessing.util.Finalize(self, self.close, exitpriority=0)

    def _run(self) -> None:
        take = self.queue.get_nowait
        while True:
            batch = [self.queue.get()]
            if batch[0] is not _STOP and not isinstance(batch[0], threading.Event):
                self._wake.wait(self.interval)  # gather what arrives meanwhile
            while True:
                try:
                    batch.append(take())
                except queue.Empty:
                    break
            self._write([item for item in batch if isinstance(item, (logging.LogRecord, tuple))])
            for item in batch:
                if isinstance(item, threading.Event):  # flush(): written
                    item.set()
            if any(item is _STOP for item in batch):
                return

    def _write(self, records: list[logging.LogRecord | tuple[float, dict]]) -> None:
        target = self.target
        lines = []
        for record in records:
            try:
                if type(record) is tuple:  # line_for_request()
                    lines.append(target.formatter.format_request(*record) + target.terminator)
                else:
                    lines.append(target.format(record) + target.terminator)
            except Exception:  # as logging does: report the line, carry on with the rest
                if type(record) is tuple:
                    record = request_record(*record)
                target.handleError(record)
        if not lines:
            return
        with target.lock:
            try:
                target.stream.write("".join(lines))
                target.flush()
            except Exception:
                target.handleError(records[-1])

    def flush(self) -> None:
        """Writes what is queued now (returns once it is written)."""
        if self._writer is None or self._closed:
            return
        done = threading.Event()
        self.queue.put_nowait(done)
        self._wake.set()
        done.wait(5)
        self._wake.clear()

    def close(self) -> None:
        """Writes everything queued and stops the writer; later records are written directly."""
        with self._starting:
            if self._closed:
                return
            self._closed = True
            writer = self._writer
        if writer is not None and writer.is_alive():
            self.queue.put_nowait(_STOP)
            self._wake.set()
            writer.join(10)
        left = []  # queued by a thread that raced this close
        while True:
            try:
                left.append(self.queue.get_nowait())
            except queue.Empty:
                break
        self._write([item for item in left if isinstance(item, (logging.LogRecord, tuple))])
        super().close()


def configure_logging(fmt: str) -> None:
    """One handler on the medbook loggers: JSON lines, or plain text for development.

    The lines are written by a writer thread (BackgroundHandler), every
    MEDBOOK_LOG_FLUSH_MS milliseconds (default 50).
    """
    logger = logging.getLogger("medbook")
    if logger.handlers:
        return
    target = logging.StreamHandler(sys.stderr)
    if fmt == "text":
        target.setFormatter(logging.Formatter(REQUEST_LOG_FORMAT))
    else:
        target.setFormatter(RequestJsonFormatter())
    handler = BackgroundHandler(target, float(os.environ.get("MEDBOOK_LOG_FLUSH_MS", "50")) / 1000)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def init_app(app: Flask) -> None:
    if app.config["LOG_FORMAT"] not in {"json", "text"}:
        raise RuntimeError("MEDBOOK_LOG_FORMAT must be json or text")
    if app.config["METRICS"] not in {"on", "off"}:
        raise RuntimeError("MEDBOOK_METRICS must be on or off")
    configure_logging(app.config["LOG_FORMAT"])

    database = app.extensions["medbook_db"]

    @app.before_request
    def _started():
        here = g._get_current_object()  # one context lookup instead of one per use
        here.request_id = request_id()
        here.started = time.perf_counter()

    @app.after_request
    def _observed(response: Response) -> Response:
        here, asked = g._get_current_object(), request._get_current_object()
        duration = time.perf_counter() - here.get("started", time.perf_counter())
        route = asked.url_rule.rule if asked.url_rule else "unmatched"
        method, status = asked.method, response.status_code
        requests, latency = _request_metrics(route, method, str(status))
        requests.inc()
        latency.observe(duration)
        if (method == "POST" and route.startswith("/v1/appointments")) or \
                (method in ("POST", "PUT", "PATCH") and route.startswith("/fhir/R4/Appointment")):
            # A replay (Idempotency-Key) changed nothing: it is counted apart.
            outcome = "replayed" if response.headers.get("Idempotent-Replayed") else here.get("problem_code") or "ok"
            _appointment_change(route, outcome).inc()
        _pool_gauges(database.pool.get_stats())
        if request_log.isEnabledFor(logging.INFO):
            fields = {"request_id": here.get("request_id"), "method": method, "route": route, "status": status,
                      "duration_ms": round(duration * 1000, 2), "user_id": here.get("user_id")}
            writer = _sole_writer()
            ended = time.time()
            if writer is None or not writer.line_for_request(ended, fields):
                # request_log.info() without looking up the caller's file and line, which
                # the line does not carry.
                request_log.handle(request_record(ended, fields))
        return response

    if app.config["METRICS"] == "on":
        @app.get("/metrics")
        def metrics():
            """Prometheus text format (MEDBOOK_METRICS=on; no token: keep it off the internet)."""
            return Response(generate_latest(registry()), mimetype=CONTENT_TYPE_LATEST)
