"""Request parsing: turns JSON bodies, path ids and query strings into typed values.

Parsing only: whether a value is acceptable to the booking rules is decided by
the database functions. Anything that cannot be parsed is a 400 (or 415 for a
body that is not JSON) and never reaches the database.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from typing import Any

from flask import request

from .errors import ApiError

BIGINT_MAX = 2**63 - 1
ID_PATTERN = re.compile(r"[0-9]{1,19}")
# RFC 3339 date-time: a full date, a full time and a mandatory offset.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?([Zz]|[+-][0-9]{2}:[0-9]{2})")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _bad(detail: str) -> ApiError:
    return ApiError(400, detail)


def path_id(value: str, name: str) -> int:
    """A positive bigint id from the path."""
    if not ID_PATTERN.fullmatch(value) or not 1 <= int(value) <= BIGINT_MAX:
        raise _bad(f"{name} must be a positive integer id")
    return int(value)


def json_body(allowed: set[str], required: frozenset[str] = frozenset(), *,
              optional: bool = False) -> dict[str, Any]:
    """The request's JSON object, with only the allowed keys and all required ones.

    optional=True accepts a request with no body at all, as {}.
    """
    if optional and not request.get_data(cache=True):
        return {}
    if request.mimetype != "application/json":
        raise ApiError(415, "The request body must be JSON (Content-Type: application/json).")
    try:
        body = _loads(request.get_data(cache=True))
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise _bad("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise _bad("The request body must be a JSON object.")
    unknown = body.keys() - allowed
    if unknown:
        raise _bad(f"Unknown field(s): {', '.join(sorted(unknown))}.")
    missing = required - body.keys()
    if missing:
        raise _bad(f"Missing field(s): {', '.join(sorted(missing))}.")
    return body


def _no_constant(name: str) -> Any:
    """NaN, Infinity and -Infinity are not JSON (RFC 8259), though Python's parser takes them."""
    raise ValueError(name)


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _loads(data: bytes) -> Any:
    """json.loads(data, parse_constant=_no_constant), with the decoder built once instead of per call."""
    return _DECODER.decode(data.decode(json.detect_encoding(data), "surrogatepass"))


def _whole(value: Any) -> int | None:
    """A JSON integer, also written with a zero fraction (20.0), as JSON Schema's integer allows."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return None


def body_id(body: dict[str, Any], name: str) -> int:
    value = _whole(body.get(name))
    if value is None or not 1 <= value <= BIGINT_MAX:
        raise _bad(f"{name} must be a positive integer id")
    return value


def body_int(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    """An integer (not a boolean) within [low, high], or None when absent or null."""
    raw = body.get(name)
    if raw is None:
        return None
    value = _whole(raw)
    if value is None:
        raise _bad(f"{name} must be an integer")
    if not low <= value <= high:
        raise _bad(f"{name} must be between {low} and {high}")
    return value


def body_time(body: dict[str, Any], name: str) -> datetime | None:
    """An RFC 3339 timestamp with an offset, or None when the field is absent."""
    if name not in body:
        return None
    value = body[name]
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise _bad(f"{name} must be an RFC 3339 date-time with an offset, e.g. 2027-03-01T09:00:00+00:00")
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError:
        raise _bad(f"{name} is not a valid date-time") from None


def body_text(body: dict[str, Any], name: str, max_length: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(f"{name} must be a string")
    if "\x00" in value:
        raise _bad(f"{name} must not contain NUL characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
            raise _bad(f"{name} must be valid Unicode text") from None
    if len(value) > max_length:
        raise _bad(f"{name} must be at most {max_length} characters")
    return value


def query_args(allowed: set[str]) -> dict[str, str]:
    unknown = sorted(set(request.args) - allowed)
    if unknown:
        raise _bad(f"Unknown query parameter(s): {', '.join(unknown)}.")
    args = {}
    for key in allowed:
        values = request.args.getlist(key)
        if len(values) > 1:
            raise _bad(f"{key} may be given once")
        if values:
            if "\x00" in values[0]:
                raise _bad(f"{key} must not contain NUL characters")
            args[key] = values[0]
    return args


def query_date(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    if not _DATE.fullmatch(value):
        raise _bad(f"{name} must be a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _bad(f"{name} is not a valid date") from None


def query_time_zone(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    if not 1 <= len(value) <= 64:
        raise _bad(f"{name} must be an IANA time zone name such as Europe/London")
    return value


# Parsing bound of list limits: any integer a PostgreSQL integer holds reaches the rule
# (1 to 500, booking_require_limit), which answers with the range.
QUERY_INT_MAX = 2**31 - 1
_QUERY_INT = re.compile(r"[0-9]{1,10}")
_SCALARS = (str, int, float, bool, type(None))


def query_int(value: str | None, name: str) -> int | None:
    """A non-negative integer from the query string, or None when absent."""
    if value is None:
        return None
    if not _QUERY_INT.fullmatch(value) or int(value) > QUERY_INT_MAX:
        raise _bad(f"{name} must be an integer")
    return int(value)


def body_date(body: dict[str, Any], name: str) -> date:
    """A YYYY-MM-DD date from the body."""
    value = body.get(name)
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise _bad(f"{name} must be a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _bad(f"{name} is not a valid date") from None


def body_objects(body: dict[str, Any], name: str) -> list[dict[str, Any]]:
    """A list of flat JSON objects (values are strings, numbers, booleans or null).

    What the objects may contain is decided by the database function they go to.
    """
    value = body.get(name)
    if not isinstance(value, list):
        raise _bad(f"{name} must be an array")
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise _bad(f"{name}[{index}] must be an object")
        for key, field in item.items():
            if not isinstance(field, _SCALARS):
                raise _bad(f"{name}[{index}].{key} must be a string, a number or null")
            if isinstance(field, str) and ("\x00" in field or not _valid_text(field)):
                raise _bad(f"{name}[{index}].{key} must be valid text without NUL characters")
        if any("\x00" in key or not _valid_text(key) for key in item):
            raise _bad(f"{name}[{index}] has a field name that is not valid text")
    return value


def _valid_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
        return False
    return True


def item_errors_of_times(items: list[dict[str, Any]], names: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per-item parse errors of a list of objects holding exactly the named date-times."""
    errors = []
    for index, item in enumerate(items):
        unknown = sorted(set(item) - set(names))
        missing = [key for key in names if key not in item or item[key] is None]
        if unknown or missing:
            parts = ([f"unknown field(s): {', '.join(unknown)}"] if unknown else []) + \
                    ([f"missing: {', '.join(missing)}"] if missing else [])
            errors.append({"index": index, "code": "validation_error", "detail": "; ".join(parts)})
            continue
        for key in names:
            try:
                body_time(item, key)
            except ApiError as exc:
                errors.append({"index": index, "code": "validation_error", "detail": exc.detail})
                break
    return errors


def query_choice(value: str | None, name: str, choices: tuple[str, ...]) -> str | None:
    if value is None:
        return None
    if value not in choices:
        raise _bad(f"{name} must be one of {', '.join(choices)}")
    return value


# An entity-tag (RFC 9110 section 8.8.3), strong or weak, then a comma or the end.
_ENTITY_TAG = re.compile(r'[ \t]*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(?:,|$)')
_VERSION_TAG = re.compile(r"[0-9]{1,18}")


def if_match(*, weak: bool = False) -> list[int] | None:
    """The versions an If-Match header names, for the database to compare under its row lock.

    None without the header or with "*" (any current version). Comparison is strong
    (RFC 9110): weak tags and tags this server never sent match nothing, so a list
    of only those is an empty list, which fails the precondition (412). A header
    that is not a list of entity-tags is a 400. weak=True compares weakly (W/"3"
    and "3" both name version 3): the FHIR facade's ETags are weak, as FHIR has
    them, and FHIR clients send them back in If-Match.
    """
    values = request.headers.getlist("If-Match")
    if not values:
        return None
    refusal = f'If-Match must be "*" or a list of entity-tags such as {"W/" if weak else ""}"3"'
    text = ", ".join(values).strip(" \t")
    if text == "*":
        return None
    versions: list[int] = []
    position = 0
    while position < len(text):
        match = _ENTITY_TAG.match(text, position)
        if not match or match.end() == position:
            raise _bad(refusal)
        is_weak, tag = match.group(1), match.group(2)
        if (weak or not is_weak) and _VERSION_TAG.fullmatch(tag):
            versions.append(int(tag))
        position = match.end()
    if not text or text.endswith(","):
        raise _bad(refusal)
    return versions
