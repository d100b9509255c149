"""Opaque keyset cursors for appointment lists.

A cursor names the last row of a page by its position in the list's order,
(start_time, id), and the list it belongs to (whose list, which status filter).
It is signed with a key derived from MEDBOOK_JWT_SECRET, so a cursor that was
changed, truncated, or taken from another list is a 400, never a page from
somewhere else. The order and what "after" means are the database's
(booking_appointment_page(), db/functions/073); this is only the encoding.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime

from flask import current_app

from .errors import ApiError

MAX_LENGTH = 512
_MAC_BYTES = 16


def _key() -> bytes:
    return hmac.new(current_app.config["JWT_SECRET"].encode(), b"medbook appointment cursor",
                    hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(scope: str, status: str, start_time: datetime, row_id: int) -> str:
    """The cursor of the page that follows the row (start_time, row_id) of list `scope`/`status`."""
    payload = json.dumps([scope, status, start_time.isoformat(), row_id], separators=(",", ":")).encode()
    mac = hmac.new(_key(), payload, hashlib.sha256).digest()[:_MAC_BYTES]
    return f"{_b64(payload)}.{_b64(mac)}"


def decode(cursor: str, scope: str, status: str) -> tuple[datetime, int]:
    """(start_time, id) of the position a cursor names; a 400 unless it was made for this list."""
    bad = ApiError(400, "cursor is not a cursor of this list; start again without one")
    if len(cursor) > MAX_LENGTH or cursor.count(".") != 1:
        raise bad
    payload_text, mac_text = cursor.split(".")
    try:
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except (binascii.Error, ValueError):
        raise bad from None
    expected = hmac.new(_key(), payload, hashlib.sha256).digest()[:_MAC_BYTES]
    if not hmac.compare_digest(mac, expected):
        raise bad
    try:
        cursor_scope, cursor_status, start_text, row_id = json.loads(payload)
        start_time = datetime.fromisoformat(start_text)
    except (ValueError, TypeError):
        raise bad from None
    if (cursor_scope, cursor_status) != (scope, status) or type(row_id) is not int:
        raise bad
    return start_time, row_id
