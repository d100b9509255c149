"""The webhook delivery worker (`medbook webhooks run`): event log -> signed POSTs.

A relay thread sends NOTIFY booking_events (payload: the highest readable
event id) a few times a second when new events became readable, for this
worker and for every other listener; it covers events that an older
transaction held back, and it is the only source of notifications when the
owner has switched the on-commit one off (booking.event_log_settings).

Each loop: fan new final events out into per-subscription deliveries
(fan_out_webhook_events), claim due deliveries under a lease
(claim_webhook_deliveries), POST each one in event order, record every
attempt (record_webhook_attempt, which decides retry, failure or the 410
disable). Then it sleeps until a NOTIFY on booking_events or the poll
interval, whichever comes first. The rules (ordering, leases, backoff, when
to give up) are in the SQL functions; this file sends HTTP and signs.

Requests follow Standard Webhooks: the body is {"type", "timestamp", "data"}
(data: the resource as the REST API shows it), with the headers webhook-id
(the event id, the same on every retry), webhook-timestamp (seconds, when
sent) and webhook-signature (v1, HMAC-SHA256 with the whsec_ secret), signed
by the standardwebhooks library.

Several workers may run against one database; a worker killed at any point
loses nothing (its leases run out and another worker takes over). Nothing
here logs a URL, a secret or a body: only ids, outcomes and durations.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from standardwebhooks import Webhook

from . import webhook_http

log = logging.getLogger("medbook.webhooks")

CHANNEL = "booking_events"


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """How the worker behaves; each field has an environment variable (see README, Configuration)."""

    timeout: float = field(default=5.0, metadata={"env": "MEDBOOK_WEBHOOK_TIMEOUT_SECONDS"})
    retry_base: float = field(default=10.0, metadata={"env": "MEDBOOK_WEBHOOK_RETRY_BASE_SECONDS"})
    retry_cap: float = field(default=8 * 3600.0, metadata={"env": "MEDBOOK_WEBHOOK_RETRY_CAP_SECONDS"})
    retry_window: float = field(default=24 * 3600.0, metadata={"env": "MEDBOOK_WEBHOOK_RETRY_WINDOW_SECONDS"})
    lease: float = field(default=60.0, metadata={"env": "MEDBOOK_WEBHOOK_LEASE_SECONDS"})
    poll: float = field(default=1.0, metadata={"env": "MEDBOOK_WEBHOOK_POLL_SECONDS"})
    relay: float = field(default=0.2, metadata={"env": "MEDBOOK_EVENTS_RELAY_SECONDS"})
    batch: int = field(default=20, metadata={"env": "MEDBOOK_WEBHOOK_BATCH"})
    max_subscriptions: int = field(default=10, metadata={"env": "MEDBOOK_WEBHOOK_MAX_SUBSCRIPTIONS"})
    max_response_bytes: int = field(default=65536, metadata={"env": "MEDBOOK_WEBHOOK_MAX_RESPONSE_BYTES"})
    allow_private: bool = field(default=False, metadata={"env": "MEDBOOK_WEBHOOK_ALLOW_PRIVATE"})
    db_role: str = field(default="medbook_webhooks", metadata={"env": "MEDBOOK_WEBHOOK_DB_ROLE"})

    @classmethod
    def from_env(cls, **overrides: Any) -> Settings:
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = os.environ.get(f.metadata["env"])
            if raw is None:
                continue
            values[f.name] = _flag(raw) if isinstance(f.default, bool) else type(f.default)(raw)
        settings = cls(**{**values, **overrides})
        if settings.lease < settings.timeout * 2:
            raise ValueError("MEDBOOK_WEBHOOK_LEASE_SECONDS must be at least twice the timeout")
        return settings


def message(event_type: str, occurred_at: datetime, payload: dict[str, Any]) -> str:
    """The Standard Webhooks body: {"type", "timestamp", "data"}."""
    body = {"type": event_type, "timestamp": occurred_at.astimezone(UTC).isoformat(), "data": payload}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def signed_headers(secret: str, msg_id: str, body: str, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers for body, sent at `at`."""
    at = at.replace(microsecond=0)
    return {
        "Content-Type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, body),
    }


class Worker:
    """One delivery worker: run() until stop is set."""

    def __init__(self, conninfo: str, settings: Settings | None = None, *, name: str | None = None) -> None:
        self.conninfo = conninfo
        self.settings = settings or Settings.from_env()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.attempts = 0

    # database -------------------------------------------------------------------

    def connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self.conninfo, autocommit=True, row_factory=dict_row,
                               application_name="medbook-webhooks", connect_timeout=5)
        conn.execute("SELECT set_config('TimeZone', 'UTC', false), set_config('statement_timeout', '30s', false)")
        if self.settings.db_role:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.settings.db_role)))
        return conn

    def fan_out(self, conn: psycopg.Connection) -> int:
        """Queues deliveries for every new final event; returns how many events it consumed."""
        total = 0
        while True:
            n = conn.execute("SELECT booking_api.fan_out_webhook_events(1000) AS n").fetchone()["n"]
            total += n
            if n < 1000:
                return total

    def deliver_due(self, conn: psycopg.Connection, stop: threading.Event) -> int:
        """Claims due deliveries and sends them in order; returns how many attempts it made."""
        s = self.settings
        lease_ends = time.monotonic() + s.lease
        rows = conn.execute("SELECT * FROM booking_api.claim_webhook_deliveries(%s, %s, %s)",
                            (s.max_subscriptions, s.batch, timedelta(seconds=s.lease))).fetchall()
        if not rows:
            return 0
        made = 0
        unsent = False
        for _, run in itertools.groupby(rows, key=lambda row: row["subscription_id"]):
            for row in run:
                if stop.is_set() or time.monotonic() + s.timeout + 1.0 > lease_ends:
                    unsent = True  # not enough lease left for one more full attempt
                    break
                outcome = self.record(conn, row, self.send(row))
                made += 1
                if outcome != "delivered":
                    break  # the rest of this subscription waits behind it (released by the record)
        if unsent:
            conn.execute("SELECT booking_api.release_webhook_deliveries(%s)", (rows[0]["lease_token"],))
        return made

    def send(self, row: dict[str, Any]) -> webhook_http.Outcome:
        body = message(row["event_type"], row["occurred_at"], row["payload"])
        headers = signed_headers(row["secret"], str(row["event_id"]), body, datetime.now(UTC))
        return webhook_http.post(row["url"], body.encode("utf-8"), headers, timeout=self.settings.timeout,
                                 allow_private=self.settings.allow_private,
                                 max_response_bytes=self.settings.max_response_bytes)

    def record(self, conn: psycopg.Connection, row: dict[str, Any], outcome: webhook_http.Outcome) -> str:
        s = self.settings
        attempted_at = datetime.now(UTC) - timedelta(milliseconds=outcome.duration_ms)
        result = conn.execute(
            "SELECT booking_api.record_webhook_attempt(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) AS r",
            (row["delivery_id"], row["lease_token"], self.name, attempted_at, outcome.duration_ms, outcome.status,
             outcome.error, timedelta(seconds=s.retry_base), timedelta(seconds=s.retry_cap),
             timedelta(seconds=s.retry_window))).fetchone()["r"]
        self.attempts += 1
        log.info("webhook attempt: subscription %s, delivery %s, event %s, attempt %s: %s in %s ms -> %s",
                 row["subscription_id"], row["delivery_id"], row["event_id"], row["attempt"],
                 outcome.status or "no response", outcome.duration_ms, result, extra={
            "subscription_id": row["subscription_id"], "delivery_id": row["delivery_id"],
            "event_id": row["event_id"], "attempt": row["attempt"], "status": outcome.status,
            "duration_ms": outcome.duration_ms, "outcome": result})
        return result

    # the loop -------------------------------------------------------------------------

    def run_once(self, conn: psycopg.Connection, stop: threading.Event | None = None) -> int:
        """One fan-out and one round of deliveries; returns the attempts made."""
        self.fan_out(conn)
        return self.deliver_due(conn, stop or threading.Event())

    def relay(self, stop: threading.Event) -> None:
        """NOTIFY booking_events whenever new events became readable (every `relay` seconds; 0: never).

        Booking transactions notify on commit unless the owner turned that off;
        their events may become readable only later, when an older transaction
        ends. This thread announces them then, for this worker's own loop and
        for every other listener.
        """
        last: int | None = None
        while self.settings.relay > 0 and not stop.is_set():
            try:
                with self.connect() as conn:
                    while not stop.is_set():
                        last = conn.execute("SELECT booking_api.notify_booking_events(%s) AS id",
                                            (last,)).fetchone()["id"]
                        stop.wait(self.settings.relay)
            except psycopg.OperationalError:
                stop.wait(1.0)

    def run(self, stop: threading.Event) -> None:
        """Delivers until stop is set; survives database restarts (reconnects)."""
        log.info("webhook worker started", extra={"worker": self.name})
        relay = threading.Thread(target=self.relay, args=(stop,), name="medbook-events-relay", daemon=True)
        relay.start()
        failures = 0
        while not stop.is_set():
            try:
                with self.connect() as conn, self.connect() as listener:
                    listener.execute(f"LISTEN {CHANNEL}")
                    failures = 0
                    while not stop.is_set():
                        if self.run_once(conn, stop) == 0:
                            for _ in listener.notifies(timeout=self.settings.poll, stop_after=1):
                                pass
            except psycopg.OperationalError as exc:
                failures += 1
                log.warning("webhook worker lost the database; reconnecting",
                            extra={"worker": self.name, "sqlstate": exc.sqlstate})
                stop.wait(min(2.0 ** failures / 4, 5.0))
        relay.join(5)
        log.info("webhook worker stopped", extra={"worker": self.name})
