"""Calendar feeds (RFC 5545): a secret feed URL per user, for calendar apps that cannot send headers.

POST /v1/me/calendar-token issues the signed-in user's feed token (revoking
the previous one) and the absolute feed URLs. The feeds,
GET /v1/patients/{id}/calendar.ics?token=... and
GET /v1/practitioners/{id}/calendar.ics?token=..., are authorised by the
token alone: booking_api.calendar_feed() compares its hash in constant time
and answers a wrong token, a revoked one or an unknown id with the same 404.
The token is a password in a URL: only its hash is stored, and nothing logs
it (the request log writes route templates, never query strings; the server
writes no access log).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, jsonify, request
from icalendar import Calendar, Event

from . import parse
from .auth import current_user_id

bp = Blueprint("feeds", __name__, url_prefix="/v1")

PRODID = "-//Medbook//Booking calendar feed//EN"
UID_DOMAIN = "booking.medbook"


def _db():
    return current_app.extensions["medbook_db"]


def _base_url() -> str:
    """MEDBOOK_PUBLIC_URL when set (behind a proxy), else the URL this request came to."""
    return (current_app.config.get("PUBLIC_URL") or request.host_url).rstrip("/")


def feed_url(kind: str, owner_id: int | None, token: str) -> str | None:
    if owner_id is None:
        return None
    return f"{_base_url()}/v1/{kind}s/{owner_id}/calendar.ics?{urlencode({'token': token})}"


@bp.post("/me/calendar-token")
def issue_calendar_token():
    """A new calendar feed token for the signed-in patient or practitioner; the old one stops working."""
    user_id = current_user_id()
    parse.json_body(set(), optional=True)
    row = _db().call_one("issue_calendar_token", user_id)
    response = jsonify({"token": row["token"],
                        "patient_feed_url": feed_url("patient", row["patient_id"], row["token"]),
                        "practitioner_feed_url": feed_url("practitioner", row["practitioner_id"], row["token"])})
    response.status_code = 201
    return response


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def render(kind: str, rows: list[dict[str, Any]]) -> bytes:
    """The feed as iCalendar: one VEVENT per appointment, times in UTC, a stable UID."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", "Medbook appointments")
    for row in rows:
        event = Event()
        event.add("uid", f"appointment-{row['appointment_id']}@{UID_DOMAIN}")
        event.add("dtstamp", _utc(row["changed_at"]))
        event.add("last-modified", _utc(row["changed_at"]))
        event.add("dtstart", _utc(row["start_time"]))
        event.add("dtend", _utc(row["end_time"]))
        title = "Appointment with" if kind == "patient" else "Appointment:"
        event.add("summary", f"{title} {row['counterpart_name']}")
        event.add("status", row["ical_status"])
        event.add("sequence", row["sequence"])
        event.add("transp", "OPAQUE")
        calendar.add_component(event)
    return calendar.to_ical()


def _feed(kind: str, owner_id: str) -> Response:
    oid = parse.path_id(owner_id, f"{kind}_id")
    token = parse.query_args({"token"}).get("token", "")
    rows = _db().call("calendar_feed", token, kind, oid)
    return Response(render(kind, rows), mimetype="text/calendar", content_type="text/calendar; charset=utf-8")


@bp.get("/patients/<patient_id>/calendar.ics")
def patient_calendar(patient_id: str):
    """The patient's appointments as iCalendar, for the holder of their feed token."""
    return _feed("patient", patient_id)


@bp.get("/practitioners/<practitioner_id>/calendar.ics")
def practitioner_calendar(practitioner_id: str):
    """The practitioner's appointments as iCalendar, for the holder of their feed token."""
    return _feed("practitioner", practitioner_id)
