"""Idempotency-Key: the header, and the one call that runs an operation at most once per key.

The rule lives in perform_idempotently() (db/functions/080): it claims the key
without waiting, replays a stored outcome, or runs the operation and stores its
outcome in the same transaction. This module only parses the header, calls
that function (or the plain one when no key was sent) and marks replays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Response, current_app, request
from psycopg.types.json import Jsonb

from .errors import REPLAYED_HEADER, ApiError, StoredRefusalError

HEADER = "Idempotency-Key"
KEY_PATTERN = re.compile(r"[\x20-\x7e]{1,255}")


def key() -> str | None:
    """The request's Idempotency-Key, or None without one; a malformed key is a 400.

    One look-up of HTTP_IDEMPOTENCY_KEY, not headers.getlist(), which walks the
    whole WSGI environ: a WSGI server hands a repeated header over as one environ
    value, its copies joined by commas (granian "a,b", werkzeug's test client
    "a, b"), so there is never more than one to get.
    """
    value = request.headers.get(HEADER)
    if value is None:
        return None
    if not KEY_PATTERN.fullmatch(value):
        raise ApiError(400, "Idempotency-Key must be 1 to 255 printable ASCII characters.")
    return value


@dataclass(frozen=True)
class Outcome:
    """What the booking function returned (a row, or its stored JSON; rows for a set-returning
    function), and whether it is a replay."""

    row: Any
    replayed: bool


def _json(value: Any) -> Any:
    if isinstance(value, list):
        return [_json(item) for item in value]
    return value.isoformat() if isinstance(value, datetime) else value


def perform(operation: str, user_id: int, idempotency_key: str | None, *, many: bool = False,
            **arguments: Any) -> Outcome:
    """Runs the booking function `operation`; with a key, at most once, through perform_idempotently().

    The keyword arguments are the function's parameters after the acting user, in order,
    named as in SQL without the p_ prefix. many=True: the function returns a set of rows.
    """
    db = current_app.extensions["medbook_db"]
    if idempotency_key is None:
        call = db.call if many else db.call_one
        return Outcome(call(operation, user_id, *arguments.values()), False)
    row = db.call_one("perform_idempotently", user_id, idempotency_key, operation,
                      Jsonb({name: _json(value) for name, value in arguments.items()}))
    if row["error_sqlstate"]:
        raise StoredRefusalError(row["error_sqlstate"], row["error_message"], row["error_hint"], row["error_detail"],
                                 row["replayed"])
    return Outcome(row["result"], row["replayed"])


def mark(response: Response, replayed: bool) -> Response:
    """Adds Idempotent-Replayed: true to a replayed response."""
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response
