"""A practitioner's own view: who is coming, and their booking settings."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, current_app, jsonify

from . import lists, parse, resources
from .auth import current_user_id
from .errors import ApiError

bp = Blueprint("practitioners", __name__, url_prefix="/v1")

# The rule (0 to 30 days) is the database's; parsing only refuses what no rule could
# accept, so that a huge number gets a clear message rather than an overflow.
NOTICE_MINUTES_MIN, NOTICE_MINUTES_MAX = 0, 30 * 24 * 60


def _db():
    return current_app.extensions["medbook_db"]


def _settings(row: dict) -> Response:
    """The settings with their strong ETag (their version; 0 while never set)."""
    response = jsonify(resources.settings(row))
    response.headers["ETag"] = resources.etag(row)
    return response


@bp.get("/practitioners/<practitioner_id>/appointments")
def list_practitioner_appointments(practitioner_id: str):
    """The signed-in practitioner's appointments: upcoming (default), past, cancelled or all, a page at a time."""
    user_id = current_user_id()
    pid = parse.path_id(practitioner_id, "practitioner_id")
    return jsonify(lists.appointment_page("list_practitioner_appointments", user_id, pid, "practitioner"))


@bp.get("/practitioners/<practitioner_id>/settings")
def get_booking_settings(practitioner_id: str):
    """A practitioner's booking time zone and cancellation notice, to any signed-in user, with its ETag."""
    user_id = current_user_id()
    row = _db().call_one("get_booking_settings", user_id, parse.path_id(practitioner_id, "practitioner_id"))
    return _settings(row)


@bp.patch("/practitioners/<practitioner_id>/settings")
def set_booking_settings(practitioner_id: str):
    """Change the time zone and/or the cancellation notice (that practitioner only; with If-Match, only if
    unchanged)."""
    user_id = current_user_id()
    pid = parse.path_id(practitioner_id, "practitioner_id")
    if_match = parse.if_match()
    body = parse.json_body({"time_zone", "cancellation_notice_minutes"})
    if None in body.values():
        raise ApiError(400, "Settings cannot be null; leave a field out to keep it.")
    time_zone = parse.body_text(body, "time_zone", 64)
    minutes = parse.body_int(body, "cancellation_notice_minutes", NOTICE_MINUTES_MIN, NOTICE_MINUTES_MAX)
    row = _db().call_one("set_booking_settings", user_id, pid, time_zone,
                         None if minutes is None else timedelta(minutes=minutes), if_match)
    return _settings(row)
