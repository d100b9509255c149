"""The connection pool and the one way the API talks to PostgreSQL: call a function."""

from __future__ import annotations

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


class Database:
    """A psycopg pool whose connections run as the API's database role."""

    def __init__(self, conninfo: str, *, role: str | None, min_size: int, max_size: int,
                 timeout: float, lock_timeout_ms: int, statement_timeout_ms: int,
                 idle_in_transaction_timeout_ms: int) -> None:
        self.role = role
        self._settings = {
            "TimeZone": "UTC",
            "lock_timeout": f"{lock_timeout_ms}ms",
            "statement_timeout": f"{statement_timeout_ms}ms",
            "idle_in_transaction_session_timeout": f"{idle_in_transaction_timeout_ms}ms",
        }
        self.pool = ConnectionPool(
            conninfo,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            kwargs={"autocommit": True, "row_factory": dict_row,
                    "application_name": "medbook-api", "connect_timeout": 5},
            configure=self._configure,
            open=False,
            name="medbook-api",
        )

    def _configure(self, conn: psycopg.Connection) -> None:
        for name, value in self._settings.items():
            conn.execute("SELECT set_config(%s, %s, false)", (name, value))
        if self.role:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(self.role)))

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
                    return conn.execute(query, args).fetchall()
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
