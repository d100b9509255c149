"""Finding a practitioner: who am I, the practitioner directory and one practitioner's entry."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from . import parse, resources
from .auth import current_user_id

bp = Blueprint("directory", __name__, url_prefix="/v1")

DIRECTORY_LIMIT = 20


def _db():
    return current_app.extensions["medbook_db"]


@bp.get("/me")
def get_me():
    """The signed-in user, with their patient and practitioner ids."""
    user_id = current_user_id()
    parse.query_args(set())
    return jsonify(resources.me(_db().call_one("get_me", user_id)))


@bp.get("/practitioners")
def list_practitioners():
    """The directory: filtered by specialty and a local date, by next available start, keyset-paged."""
    user_id = current_user_id()
    args = parse.query_args({"specialty", "available_on", "tz", "limit", "cursor"})
    limit = parse.query_int(args.get("limit"), "limit")
    rows = _db().call("list_practitioners", user_id, args.get("specialty"),
                      parse.query_date(args.get("available_on"), "available_on"),
                      parse.query_time_zone(args.get("tz"), "tz"),
                      DIRECTORY_LIMIT if limit is None else limit, args.get("cursor"))
    return jsonify(resources.page(rows, resources.practitioner))


@bp.get("/practitioners/<practitioner_id>")
def get_practitioner(practitioner_id: str):
    """One practitioner's directory entry, to any signed-in user."""
    user_id = current_user_id()
    parse.query_args(set())
    row = _db().call_one("get_practitioner", user_id, parse.path_id(practitioner_id, "practitioner_id"))
    return jsonify(resources.practitioner(row))
