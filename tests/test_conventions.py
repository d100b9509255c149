"""db/CONVENTIONS.md, checked where a machine can check it."""

from __future__ import annotations

import re

from conftest import ROOT

from api import errors, schema

CONVENTIONS = (ROOT / "db" / "CONVENTIONS.md").read_text()
VOLATILITY = re.compile(r"^(IMMUTABLE|STABLE|VOLATILE)$", re.M)


def documented_areas() -> set[str]:
    section = CONVENTIONS.split("## Error codes", 1)[1]
    return set(re.findall(r"^\| `([A-Z0-9])` \|", section, flags=re.M))


def raised_sqlstates() -> set[str]:
    codes = set()
    for path in [*schema.function_files(), *schema.MIGRATIONS_DIR.glob("*.sql")]:
        codes |= set(re.findall(r"ERRCODE = '(MB[A-Z0-9]{3})'", path.read_text()))
    return codes


def test_custom_sqlstates_follow_the_scheme():
    areas = documented_areas()
    assert {"4", "S", "A"} <= areas
    for code in raised_sqlstates() | {c for c in errors.SQLSTATES if c.startswith("MB")}:
        assert re.fullmatch(r"MB[A-Z0-9][0-9]{2}", code), code
        assert code[2] in areas, f"{code}: area {code[2]!r} is not in db/CONVENTIONS.md"


PROCEDURE = re.compile(r"CREATE OR REPLACE PROCEDURE (\w+)\.(\w+)\(")


def test_procedure_files_commit_as_their_callers():
    """A procedure commits as it goes: no SET clause, not SECURITY DEFINER (PostgreSQL forbids
    transaction control in both), every booking name written in full, and for the owner only."""
    for path in schema.function_files():
        text = path.read_text()
        for schema_name, name in PROCEDURE.findall(text):
            assert schema_name == "booking_api", path.name
            assert "CREATE OR REPLACE FUNCTION" not in text, f"{path.name}: one routine per file"
            assert text.lstrip().startswith("/*"), f"{path.name}: starts with a /* why */ block"
            code = text.split("*/", 1)[1]
            assert "SECURITY DEFINER" not in code and "SET search_path" not in code, path.name
            assert f"COMMENT ON PROCEDURE booking_api.{name}(" in text, path.name
            assert f"REVOKE ALL ON PROCEDURE booking_api.{name}(" in text, path.name
            assert "GRANT EXECUTE" not in text, f"{path.name}: owner only"
            body = text.split("AS $$", 1)[1].split("$$;", 1)[0]
            unqualified = re.findall(r"\b(?:FROM|JOIN)\s+(?!booking\.|booking_api\.|public\.)(\w+)", body)
            assert not unqualified, f"{path.name}: unqualified names {unqualified}"


def test_function_files_end_the_standard_way():
    for path in schema.function_files():
        text = path.read_text()
        names = re.findall(r"CREATE OR REPLACE FUNCTION (\w+)\.(\w+)\(", text)
        if not names and PROCEDURE.search(text):
            continue  # test_procedure_files_commit_as_their_callers
        assert names, path.name
        assert text.lstrip().startswith("/*"), f"{path.name}: starts with a /* why */ block"
        for schema_name, name in names:
            assert schema_name in {"booking", "booking_api"}, path.name
            assert f"COMMENT ON FUNCTION {schema_name}.{name}(" in text, path.name
            assert f"REVOKE ALL ON FUNCTION {schema_name}.{name}(" in text, path.name
            if schema_name == "booking":
                assert f"GRANT EXECUTE ON FUNCTION booking.{name}(" not in text, f"{path.name}: internal"
        assert len(VOLATILITY.findall(text)) == len(names), f"{path.name}: every function states its volatility"
        assert text.count("SET search_path = pg_catalog, booking, pg_temp") == len(names), path.name
        for signature in re.findall(r"CREATE OR REPLACE FUNCTION [\w.]+\((.*?)\)\s*RETURNS", text, flags=re.S):
            params = [part.split()[0] for part in signature.split(",") if part.strip()]
            assert all(p.startswith("p_") for p in params), f"{path.name}: parameters are p_*: {params}"


def test_migrations_define_only_trigger_functions():
    """migrate drops the non-trigger functions of booking and booking_api; a migration's would vanish."""
    for path in sorted(schema.MIGRATIONS_DIR.glob("*.sql")):
        for returns in re.findall(r"CREATE (?:OR REPLACE )?FUNCTION [\w.]+\([^)]*\)\s+RETURNS (\w+)", path.read_text()):
            assert returns == "trigger", path.name
