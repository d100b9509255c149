"""The thinnest Flask shim over booking_api.book_slot(), for the bench's "how thin is our layer" ratio.

No authentication, no validation, no problem+json mapping, no extra headers: the
patient's users.id comes from X-User-Id and the slot from the JSON body, and the
row goes back as JSON. It uses the same pool settings and database role as the
real app, so the ratio real/bare measures only what api/ adds. Lives in bench/
only; never serve it.
"""

from __future__ import annotations

import os
from datetime import datetime

from flask import Flask, jsonify, request
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool


def create_app() -> Flask:
    app = Flask(__name__)
    pool = ConnectionPool(
        os.environ["DATABASE_URL"],
        min_size=int(os.environ.get("MEDBOOK_POOL_MIN_SIZE", "1")),
        max_size=int(os.environ.get("MEDBOOK_POOL_MAX_SIZE", "4")),
        kwargs={"autocommit": True, "row_factory": dict_row},
        configure=lambda conn: conn.execute("SET ROLE medbook_api"),
        open=True,
    )

    @app.post("/v1/appointments")
    def book():
        with pool.connection() as conn:
            row = conn.execute("SELECT * FROM booking_api.book_slot(%s, %s)",
                               (int(request.headers["X-User-Id"]), request.get_json()["slot_id"])).fetchone()
        body = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
        return jsonify(body), 201

    @app.get("/v1/healthz")
    def healthz():
        return jsonify({"status": "ok"})

    return app
