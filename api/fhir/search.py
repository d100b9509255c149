"""Search parameters and searchset Bundles.

SEARCH_PARAMETERS is the one list of what each resource type can be searched
by: the parser accepts exactly these (anything else is a 400, as the REST API
treats an unknown query parameter), and the CapabilityStatement
(api/fhir/metadata.py) is written from the same list. Parsing turns FHIR syntax
into the arguments of the search functions (db/functions/120-139); the
searching, the access rules and the counting are theirs.

Dates: only the prefixes ge, gt, le and lt, at most one lower and one upper
bound. A value stands for an interval by its precision (a date is a whole UTC
day, an instant without a fraction a whole second), and the bounds become the
half-open range [from, before) the functions take, per FHIR's rules for a point
in time: ge d -> from d.start, gt d -> from d.end, lt d -> before d.start,
le d -> before d.end.

Paging: a `next` link repeats the search with `_cursor`, the REST lists' own
keyset cursor, made and checked by the search function (booking_cursor_encode()
and booking_cursor_decode(), db/functions/052-053): it names the last row of the
page and is signed together with the search it belongs to, so a changed cursor,
or one moved to another search, is a 400 (invalid_cursor). Here it is only
passed through.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from flask import request

from .wire import FhirError, base_url, invalid, parse_reference, parse_time

DEFAULT_COUNT = 100
CURSOR_PARAMETER = "_cursor"
CURSOR_MAX_LENGTH = 512
RESULT_PARAMETERS = ("_count", CURSOR_PARAMETER)
DATE_PREFIXES = ("ge", "gt", "le", "lt")


@dataclass(frozen=True)
class SearchParameter:
    name: str
    type: str            # FHIR search parameter type: reference | token | date
    definition: str      # canonical URL of the standard parameter
    documentation: str
    target: str = ""     # for references: the resource type referred to


def _standard(resource: str, name: str) -> str:
    return f"http://hl7.org/fhir/SearchParameter/{resource}-{name}"


SEARCH_PARAMETERS: dict[str, tuple[SearchParameter, ...]] = {
    "Schedule": (
        SearchParameter("actor", "reference", _standard("Schedule", "actor"),
                        "Required. Practitioner/{id}: that practitioner's schedule (one per practitioner).",
                        "Practitioner"),
    ),
    "Slot": (
        SearchParameter("schedule", "reference", _standard("Slot", "schedule"),
                        "Required. Schedule/{practitioner_id}: whose slots.", "Schedule"),
        SearchParameter("status", "token", _standard("Slot", "status"),
                        "free and/or busy (comma-separated). busy: that practitioner only. Without it, what the "
                        "caller may see: free, and busy too for the practitioner."),
        SearchParameter("start", "date", _standard("Slot", "start"),
                        "Prefixes ge, gt, le, lt; at most one lower and one upper bound. Only slots that have not "
                        "started are listed."),
    ),
    "Appointment": (
        SearchParameter("patient", "reference", _standard("clinical", "patient"),
                        "Patient/{id}: the caller's own patient id (or, with practitioner, narrows it).",
                        "Patient"),
        SearchParameter("practitioner", "reference", _standard("Appointment", "practitioner"),
                        "Practitioner/{id}: the caller's own practitioner id (or, with patient, narrows it). "
                        "patient or practitioner is required.", "Practitioner"),
        SearchParameter("date", "date", _standard("clinical", "date"),
                        "Appointment start. Prefixes ge, gt, le, lt; at most one lower and one upper bound."),
        SearchParameter("status", "token", _standard("Appointment", "status"),
                        "Comma-separated statuses: booked, cancelled, fulfilled (completed), noshow (no_show)."),
    ),
}

STATUS_SYSTEMS = {"Slot": "http://hl7.org/fhir/slotstatus", "Appointment": "http://hl7.org/fhir/appointmentstatus"}


@dataclass
class Search:
    """A parsed search: the values of its parameters, the page size and the cursor, if any."""

    resource_type: str
    values: dict[str, Any]
    count: int
    cursor: str | None


def parse(resource_type: str, *, statuses: dict[str, str | None], paged: bool = True) -> Search:
    """The request's query as a Search; `statuses` maps each FHIR status code to ours (None: we have none).
    A search that is never paged (paged=False) takes no _cursor."""
    parameters = {p.name: p for p in SEARCH_PARAMETERS[resource_type]}
    results = RESULT_PARAMETERS if paged else tuple(p for p in RESULT_PARAMETERS if p != CURSOR_PARAMETER)
    unknown = sorted(set(request.args) - set(parameters) - set(results))
    if unknown:
        raise invalid(f"Unknown or unsupported search parameter(s) for {resource_type}: {', '.join(unknown)[:200]}. "
                      f"Supported: {', '.join([*parameters, *results])}.", "not-supported")
    values: dict[str, Any] = {}
    for name, parameter in parameters.items():
        given = request.args.getlist(name)
        if not given:
            continue
        if any("\x00" in value for value in given):
            raise invalid(f"{name} must not contain NUL characters")
        if parameter.type == "date":
            values[name] = _date_range(name, given)
        elif len(given) > 1:
            raise invalid(f"{name} may be given once (list several values with commas where allowed)")
        elif parameter.type == "reference":
            values[name] = _reference(given[0], parameter)
        else:
            values[name] = _statuses(given[0], name, STATUS_SYSTEMS[resource_type], statuses)
    return Search(resource_type, values, _count(), _cursor())


def _reference(value: str, parameter: SearchParameter) -> int:
    """The id of `Type/id`, a bare id, or this server's absolute URL of the resource."""
    text = value[len(base_url()):] if value.startswith(base_url()) else value
    kind, slash, rid = text.rpartition("/")
    if slash and kind != parameter.target:
        raise invalid(f"{parameter.name} must refer to a {parameter.target}, e.g. {parameter.target}/1")
    return parse_reference(f"{parameter.target}/{rid}", (parameter.target,), parameter.name)[1]


def _statuses(value: str, name: str, system: str, statuses: dict[str, str | None]) -> list[str]:
    """Our statuses for a comma-separated list of FHIR codes (system|code allowed); known FHIR codes we
    never use match nothing."""
    ours = []
    for token in value.split(","):
        token_system, bar, code = token.rpartition("|")
        if bar and token_system not in ("", system):
            raise invalid(f"{name}: the code system of {token[:60]!r} must be {system}")
        if code not in statuses:
            raise invalid(f"{name}: {code[:40]!r} is not a status code ({', '.join(statuses)})", "code-invalid")
        if statuses[code] is not None and statuses[code] not in ours:
            ours.append(statuses[code])
    return ours


def _date_range(name: str, given: list[str]) -> tuple[datetime | None, datetime | None]:
    """[from, before) for the prefixed values of a date parameter."""
    start_from = before = None
    for value in given:
        prefix, rest = value[:2], value[2:]
        if prefix not in DATE_PREFIXES or not rest[:1].isdigit():
            raise invalid(f"{name} must start with one of the prefixes {', '.join(DATE_PREFIXES)} followed by a "
                          f"date or an instant, e.g. {name}=ge2027-03-01T00:00:00Z")
        start, precision = parse_time(rest, name, allow_date=True)
        try:
            end = start + precision
        except OverflowError:
            raise invalid(f"{name} is out of range") from None
        if prefix in ("ge", "gt"):
            if start_from is not None:
                raise invalid(f"{name} may have one lower bound (ge or gt)")
            start_from = start if prefix == "ge" else end
        else:
            if before is not None:
                raise invalid(f"{name} may have one upper bound (le or lt)")
            before = start if prefix == "lt" else end
    return start_from, before


def _count() -> int:
    given = request.args.getlist("_count")
    if not given:
        return DEFAULT_COUNT
    if len(given) > 1 or not given[0].isascii() or not given[0].isdigit() or len(given[0]) > 6:
        raise invalid("_count must be a whole number from 1 to 500")
    return int(given[0])


def _cursor() -> str | None:
    given = request.args.getlist(CURSOR_PARAMETER)
    if not given:
        return None
    if len(given) > 1 or len(given[0]) > CURSOR_MAX_LENGTH:
        raise FhirError(400, "_cursor is not a cursor of this search; start again without it", "invalid",
                        "invalid_cursor")
    return given[0]


# Bundles ---------------------------------------------------------------------------

def bundle(search: Search, rows: list[dict[str, Any]], to_resource) -> dict[str, Any]:
    """A searchset Bundle of the rows a search function returned (each carrying total, the last one of a
    page that more follow next_cursor; an empty page is one row with only total)."""
    matches = [row for row in rows if row["id"] is not None]
    total = rows[0]["total"] if rows else 0
    links = [self_link(search.resource_type)]
    if matches and matches[-1]["next_cursor"]:
        query = [(name, value) for name, value in request.args.items(multi=True) if name != CURSOR_PARAMETER]
        query.append((CURSOR_PARAMETER, matches[-1]["next_cursor"]))
        links.append({"relation": "next", "url": f"{base_url()}{search.resource_type}?{urlencode(query)}"})
    return searchset(total, links, [to_resource(row) for row in matches])


def self_link(resource_type: str) -> dict[str, str]:
    """The search as received, its query re-encoded (so the link is a URI whatever the client sent)."""
    query = urlencode(list(request.args.items(multi=True)))
    return {"relation": "self", "url": f"{base_url()}{resource_type}" + (f"?{query}" if query else "")}


def searchset(total: int, links: list[dict[str, str]], resources: list[dict[str, Any]]) -> dict[str, Any]:
    entries = [{"fullUrl": f"{base_url()}{resource['resourceType']}/{resource['id']}", "resource": resource,
                "search": {"mode": "match"}} for resource in resources]
    result: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": total, "link": links}
    if entries:
        result["entry"] = entries
    return result
