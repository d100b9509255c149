"""The documents cannot drift from the system they describe.

- Every table and view of the migrated database, with every column and its
  type, is in docs/ERD.md (Mermaid erDiagram) and in docs/DESIGN.md (section 2),
  and neither document names a table or column that does not exist.
- Every SQLSTATE raised in db/functions/ and db/migrations/ is in the error
  registry (docs/ERRORS.md) and in api/errors.SQLSTATES, with the same HTTP
  status and code in both; neither lists a custom SQLSTATE nothing raises.
- Every operation of api/openapi.json has its entry in DESIGN.md section 3,
  listing exactly the status codes the contract lists.
"""

from __future__ import annotations

import re

import psycopg
import pytest
from conftest import ROOT

from api import errors
from api.docs import openapi_document

DOCS = ROOT / "docs"
# yoyo's own bookkeeping tables are not part of the product's schema.
YOYO_TABLES = {"_yoyo_log", "_yoyo_migration", "_yoyo_version", "yoyo_lock"}
DESIGN_SECTIONS = ["1. Executive Summary", "2. Database Schema", "3. API Endpoint Reference",
                   "4. Edge Case Handling", "5. Trade-offs & Assumptions"]
HTTP_METHODS = {"get", "put", "post", "delete", "patch"}

# Documents write types the way psql's \d does.
TYPE_NAMES = {"int8": "bigint", "int4": "integer", "int2": "smallint", "bool": "boolean",
              "timestamptz": "timestamptz", "timestamp": "timestamp", "text": "text",
              "interval": "interval", "date": "date", "numeric": "numeric", "float8": "double precision",
              "_text": "text array"}


def database_relations(conninfo: str) -> dict[str, dict[str, str]]:
    """{relation: {column: type}} for every table and view of public and the booking schemas."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("""
            SELECT c.relname, a.attname, t.typname
              FROM pg_class c
              JOIN pg_namespace n ON n.oid = c.relnamespace
              JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
              JOIN pg_type t ON t.oid = a.atttypid
             WHERE n.nspname IN ('public', 'booking', 'booking_reporting') AND c.relkind IN ('r', 'p', 'v', 'm')
             ORDER BY c.relname, a.attnum""").fetchall()
    relations: dict[str, dict[str, str]] = {}
    for relation, column, type_name in rows:
        if relation not in YOYO_TABLES:
            relations.setdefault(relation, {})[column] = TYPE_NAMES.get(type_name, type_name)
    return relations


def erd_relations() -> dict[str, dict[str, str]]:
    """{entity: {attribute: type}} from the Mermaid erDiagram blocks of docs/ERD.md."""
    text = (DOCS / "ERD.md").read_text()
    blocks = re.findall(r"```mermaid\s*\n\s*erDiagram\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/ERD.md has no ```mermaid erDiagram block"
    relations: dict[str, dict[str, str]] = {}
    for block in blocks:
        for name, body in re.findall(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*\{(.*?)^\s*\}", block, flags=re.S | re.M):
            columns = relations.setdefault(name, {})
            for line in body.strip().splitlines():
                match = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s+([A-Za-z_][A-Za-z0-9_]*)", line)
                if match:
                    columns[match.group(2)] = match.group(1).replace("_", " ")
    return relations


def design_section(number: int) -> str:
    text = (DOCS / "DESIGN.md").read_text()
    parts = re.split(r"^## ", text, flags=re.M)
    for part in parts:
        if part.startswith(f"{number}. "):
            return part
    raise AssertionError(f"docs/DESIGN.md has no section '## {number}. ...'")


def design_relations() -> dict[str, dict[str, str]]:
    """{relation: {column: type}} from the `### \\`name\\`` tables of DESIGN.md section 2."""
    relations: dict[str, dict[str, str]] = {}
    for name, body in re.findall(r"^### `([a-z_][a-z0-9_]*)`[^\n]*\n(.*?)(?=^#{2,3} |\Z)",
                                 design_section(2), flags=re.S | re.M):
        columns = relations.setdefault(name, {})
        for column, type_name in re.findall(r"^\| `([a-z_][a-z0-9_]*)` \| `?([a-z][a-z ]*[a-z])`? \|", body,
                                            flags=re.M):
            columns[column] = type_name
    return relations


def compare(documented: dict[str, dict[str, str]], actual: dict[str, dict[str, str]], where: str) -> list[str]:
    problems = []
    for name in sorted(set(actual) - set(documented)):
        problems.append(f"{where}: table {name} is missing")
    for name in sorted(set(documented) - set(actual)):
        problems.append(f"{where}: table {name} does not exist in the database")
    for name in sorted(set(actual) & set(documented)):
        for column in actual[name]:
            if column not in documented[name]:
                problems.append(f"{where}: column {name}.{column} ({actual[name][column]}) is missing")
            elif documented[name][column] != actual[name][column]:
                problems.append(f"{where}: column {name}.{column} is {actual[name][column]}, "
                                f"documented as {documented[name][column]}")
        for column in sorted(set(documented[name]) - set(actual[name])):
            problems.append(f"{where}: column {name}.{column} does not exist in the database")
    return problems


@pytest.fixture
def relations(db: str) -> dict[str, dict[str, str]]:
    return database_relations(db)


def test_database_has_the_documented_tables(relations):
    assert {"users", "practitioners", "appointments", "availability_slots"} <= set(relations)


def test_erd_matches_the_database(relations):
    problems = compare(erd_relations(), relations, "docs/ERD.md")
    assert not problems, "\n".join(problems)


def test_design_schema_section_matches_the_database(relations):
    problems = compare(design_relations(), relations, "docs/DESIGN.md section 2")
    assert not problems, "\n".join(problems)


def test_erd_marks_existing_tables_unchanged():
    text = (DOCS / "ERD.md").read_text()
    for table in ("users", "practitioners"):
        block = re.search(rf"^\s*{table}\s*\{{(.*?)^\s*\}}", text, flags=re.S | re.M)
        assert block and "existing" in block.group(1).lower(), f"{table} is not marked existing in docs/ERD.md"


def test_design_has_exactly_the_five_sections():
    headings = re.findall(r"^## (.+?)\s*$", (DOCS / "DESIGN.md").read_text(), flags=re.M)
    assert headings == DESIGN_SECTIONS, headings
    assert "ERD.md" in design_section(2)
    assert "ERRORS.md" in (DOCS / "DESIGN.md").read_text()


def database_functions(conninfo: str) -> dict[str, set[str]]:
    """{function: roles} for each function some booking role may execute (owner-only ones: {'owner'})."""
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("""
            SELECT p.proname,
                   array_remove(ARRAY[
                       CASE WHEN has_function_privilege('medbook_api', p.oid, 'EXECUTE') THEN 'medbook_api' END,
                       CASE WHEN has_function_privilege('medbook_reporting', p.oid, 'EXECUTE')
                            THEN 'medbook_reporting' END], NULL) AS roles
              FROM pg_proc p
              JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname IN ('booking', 'booking_api') AND pg_get_userbyid(p.proowner) = 'medbook_owner'
               AND p.prorettype <> 'trigger'::regtype""").fetchall()
    return {name: set(roles) or {"owner"} for name, roles in rows}


def test_design_lists_every_function(db):
    """Every booking function is named in DESIGN.md section 2, and none that does not exist."""
    section = design_section(2)
    functions = database_functions(db)
    missing = sorted(name for name in functions if f"`{name}(" not in section)
    assert not missing, f"functions missing from docs/DESIGN.md section 2: {missing}"
    named = set(re.findall(r"`([a-z_]+)\(", section))
    unknown = sorted(named - set(functions) - {"tstzrange", "now", "pg_advisory_xact_lock"})
    assert not unknown, f"docs/DESIGN.md section 2 names functions that do not exist: {unknown}"


# Error registry ----------------------------------------------------------------

def raised_sqlstates() -> dict[str, list[str]]:
    """{SQLSTATE: [files]} for every five-character ERRCODE literal the SQL raises."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "db").rglob("*.sql")):
        for state in re.findall(r"ERRCODE\s*=\s*'([0-9A-Z]{5})'", path.read_text()):
            found.setdefault(state, []).append(path.name)
    return found


def registry_rows() -> dict[str, tuple[int, str]]:
    """{SQLSTATE: (HTTP status, code)} from the tables of docs/ERRORS.md."""
    text = (DOCS / "ERRORS.md").read_text()
    return {state: (int(status), code)
            for state, code, status in re.findall(r"^\| ([0-9A-Z]{5}) \| ([a-z_]+) \| ([0-9]{3}) \|", text,
                                                  flags=re.M)}


def test_sqlstates_are_raised_somewhere():
    assert raised_sqlstates(), "no ERRCODE literal found in db/: the parser is broken"


def test_every_raised_sqlstate_is_registered_and_mapped():
    registry = registry_rows()
    problems = []
    for state, files in sorted(raised_sqlstates().items()):
        if state not in registry:
            problems.append(f"{state} (raised in {', '.join(files)}) is missing from docs/ERRORS.md")
        if state not in errors.SQLSTATES:
            problems.append(f"{state} (raised in {', '.join(files)}) is missing from api/errors.SQLSTATES")
    assert not problems, "\n".join(problems)


def test_registry_and_mapping_agree():
    registry = registry_rows()
    problems = []
    for state, (status, code) in sorted(errors.SQLSTATES.items()):
        if state not in registry:
            problems.append(f"{state} -> {status} {code} is in api/errors.SQLSTATES but not in docs/ERRORS.md")
        elif registry[state] != (status, code):
            problems.append(f"{state}: api/errors.SQLSTATES says {status} {code}, "
                            f"docs/ERRORS.md says {registry[state][0]} {registry[state][1]}")
    for state in sorted(set(registry) - set(errors.SQLSTATES)):
        problems.append(f"{state} is in docs/ERRORS.md but not mapped in api/errors.SQLSTATES")
    raised = raised_sqlstates()
    for state in sorted(set(registry) | set(errors.SQLSTATES)):
        if not state[0].isdigit() and state not in raised:
            problems.append(f"custom SQLSTATE {state} is registered but nothing in db/ raises it")
    assert not problems, "\n".join(problems)


# API reference -------------------------------------------------------------------

def operation_specific_codes(operation: dict) -> set[str]:
    """Problem codes an operation lists for 403, 404, 409 and 422 (the others are common to all)."""
    responses = openapi_document()["components"]["responses"]
    codes = set()
    for status, response in operation["responses"].items():
        if status not in ("403", "404", "409", "422"):
            continue
        if "$ref" in response:
            response = responses[response["$ref"].rsplit("/", 1)[1]]
        content = response["content"]  # a Problem, or under /fhir/ an OperationOutcome
        codes |= set(content.get("application/problem+json", content.get("application/fhir+json"))["examples"])
    return codes


def test_design_api_reference_matches_the_contract():
    """Each operation has a `### METHOD path` entry whose 'Statuses:' line equals the contract's,
    and which names every operation-specific problem code the contract lists."""
    section = design_section(3)
    entries, bodies = {}, {}
    for method, path, body in re.findall(r"^### `([A-Z]+) (/[^`]*)`[^\n]*\n(.*?)(?=^### |\Z)", section,
                                         flags=re.S | re.M):
        statuses = re.search(r"^Statuses: (.+)$", body, flags=re.M)
        bodies[(method, path)] = body
        entries[(method, path)] = set(re.findall(r"\b[1-5][0-9]{2}\b", statuses.group(1))) if statuses else None
    problems = []
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            key = (method.upper(), path)
            contract = set(operation["responses"]) - {"default"}
            if key not in entries:
                problems.append(f"{key[0]} {path} has no entry in docs/DESIGN.md section 3")
            elif entries[key] != contract:
                problems.append(f"{key[0]} {path}: DESIGN.md lists statuses {sorted(entries[key] or [])}, "
                                f"api/openapi.json {sorted(contract)}")
            if key in entries:
                for code in sorted(operation_specific_codes(operation)):
                    if f"`{code}`" not in bodies[key]:
                        problems.append(f"{key[0]} {path}: problem code {code} is not explained in DESIGN.md")
    documented = {(m.upper(), p) for p, item in openapi_document()["paths"].items() for m in item
                  if m in HTTP_METHODS}
    for key in sorted(set(entries) - documented):
        problems.append(f"{key[0]} {key[1]} is in docs/DESIGN.md section 3 but not in api/openapi.json")
    assert not problems, "\n".join(problems)
