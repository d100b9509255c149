"""The connection pool and the one way the API talks to PostgreSQL: call a function."""

from __future__ import annotations

import os
import time
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

# Serialization failures and deadlocks are retried here; the booking functions
# do not produce them at READ COMMITTED, so this is a guard, not a path.
RETRY_STATES = {"40001", "40P01"}
RETRIES = 3


@lru_cache(maxsize=128)
def _call_query(function: str, nargs: int) -> str:
    """SELECT * FROM booking_api.function(%s, ...), composed once per function and arity.

    A plain string, so psycopg's own query cache and its automatic prepared
    statements (after prepare_threshold uses) apply without re-composing it
    on every request.
    """
    return sql.SQL("SELECT * FROM {}({})").format(
        sql.Identifier("booking_api", function), sql.SQL(", ").join(sql.Placeholder() * nargs)).as_string()


def switch(name: str, value: str | bool) -> bool:
    """An on/off setting: on, true, 1, yes / off, false, 0, no (any case)."""
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in {"on", "true", "1", "yes"}:
        return True
    if text in {"off", "false", "0", "no"}:
        return False
    raise ValueError(f"{name} must be on or off, not {value!r}")


def prepare_threshold(setting: str | None = None) -> int | None:
    """psycopg's prepare_threshold for MEDBOOK_PREPARED_STATEMENTS (on: psycopg's default 5; off: None).

    Off behind a transaction pooler without prepared-statement support
    (PgBouncer before 1.21): a server-side prepared statement belongs to one
    server connection, and the next transaction may get another.
    """
    if setting is None:
        setting = os.environ.get("MEDBOOK_PREPARED_STATEMENTS", "on")
    return 5 if switch("MEDBOOK_PREPARED_STATEMENTS", setting) else None


def _literal(value: str) -> str:
    """A SQL string literal, safe inside a query that is also %-formatted."""
    return "'" + value.replace("'", "''").replace("%", "%%") + "'"


class Database:
    """A psycopg pool whose connections run as the API's database role.

    Two ways to carry the role and the timeouts (docs/OPERATIONS.md, "Behind
    PgBouncer"):

    * transaction_pooling=False: SET ROLE and the settings once per connection
      (session state; only correct on a direct connection or a session pooler).
    * transaction_pooling=True: no session state at all. Every call is one
      transaction that starts with set_config(..., true) (SET LOCAL) for the
      role and the timeouts, sent with the call in one Query message, so it is
      still one round trip. Correct behind a transaction pooler, where consecutive
      transactions of one client connection run on different server connections.
    """

    def __init__(self, conninfo: str, *, role: str | None, min_size: int, max_size: int,
                 timeout: float, lock_timeout_ms: int, statement_timeout_ms: int,
                 idle_in_transaction_timeout_ms: int, transaction_pooling: bool = False,
                 prepare: int | None = 5) -> None:
        self.role = role
        self.transaction_pooling = transaction_pooling
        self._settings = {
            "TimeZone": "UTC",
            "lock_timeout": f"{lock_timeout_ms}ms",
            "statement_timeout": f"{statement_timeout_ms}ms",
            "idle_in_transaction_session_timeout": f"{idle_in_transaction_timeout_ms}ms",
        }
        local = dict(self._settings, **({"role": role} if role else {}))
        # Literals, not parameters: the prefix travels in the same simple-protocol
        # Query message as the call (see _execute).
        self._local_prefix = "SELECT " + ", ".join(
            f"set_config({_literal(name)}, {_literal(value)}, true)" for name, value in local.items()) + "; "
        self.pool = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": prepare,
                    "application_name": "medbook-api", "connect_timeout": 5},
            configure=None if transaction_pooling else self._configure,
            open=False,
            name="medbook-api",
        )

    def _configure(self, conn: psycopg.Connection) -> None:
        for name, value in self._settings.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        if self.role:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.role)))

    def _execute(self, conn: psycopg.Connection, query: str, args: tuple) -> list[dict[str, Any]]:
        if not self.transaction_pooling:
            return conn.execute(query, args).fetchall()
        # One Query message holding two statements: PostgreSQL runs them as one
        # implicit transaction, so the set_config(..., true) of the first (SET
        # LOCAL) holds for the call and for its deferred triggers at commit, and
        # an error rolls both back with nothing left open. One round trip, no
        # prepared statement (client-side binding).
        with psycopg.ClientCursor(conn, row_factory=dict_row) as cursor:
            cursor.execute(self._local_prefix + query, args)
            cursor.nextset()
            return cursor.fetchall()

    def open(self) -> None:
        # wait=False: the API starts, and reports 503, while the database is down.
        self.pool.open(wait=False)

    def close(self) -> None:
        self.pool.close()

    def call(self, function: str, *args: Any) -> list[dict[str, Any]]:
        """Runs SELECT * FROM function(args) in its own transaction and returns the rows."""
        query = _call_query(function, len(args))
        for attempt in range(RETRIES):
            try:
                with self.pool.connection() as conn:
                    return self._execute(conn, query, args)
            except psycopg.Error as exc:
                if exc.sqlstate not in RETRY_STATES or attempt == RETRIES - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def call_one(self, function: str, *args: Any) -> dict[str, Any]:
        return self.call(function, *args)[0]

    def ping(self) -> bool:
        try:
            with self.pool.connection(timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except Exception:  # any failure at all means "not healthy"
            return False
