"""Medbook Booking HTTP API: a thin Flask layer over the booking functions in PostgreSQL."""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask, g, jsonify

from . import appointments, directory, docs, errors, feeds, fhir, observability, practitioners, schedules, slots
from .db import Database, prepare_threshold, switch

log = logging.getLogger("medbook.api")

# Every setting, its environment variable and its default.
DEFAULTS: dict[str, tuple[str, Any]] = {
    "DATABASE_URL": ("DATABASE_URL", None),
    "JWT_SECRET": ("MEDBOOK_JWT_SECRET", None),
    "DB_ROLE": ("MEDBOOK_DB_ROLE", "medbook_api"),
    "POOL_MIN_SIZE": ("MEDBOOK_POOL_MIN_SIZE", 1),
    "POOL_MAX_SIZE": ("MEDBOOK_POOL_MAX_SIZE", 4),
    "POOL_TIMEOUT": ("MEDBOOK_POOL_TIMEOUT", 5.0),
    "LOCK_TIMEOUT_MS": ("MEDBOOK_LOCK_TIMEOUT_MS", 2000),
    "STATEMENT_TIMEOUT_MS": ("MEDBOOK_STATEMENT_TIMEOUT_MS", 5000),
    "IDLE_IN_TRANSACTION_TIMEOUT_MS": ("MEDBOOK_IDLE_IN_TRANSACTION_TIMEOUT_MS", 10000),
    "MAX_CONTENT_LENGTH": ("MEDBOOK_MAX_BODY_BYTES", 64 * 1024),
    "LOG_FORMAT": ("MEDBOOK_LOG_FORMAT", "json"),
    "METRICS": ("MEDBOOK_METRICS", "off"),
    "TRANSACTION_POOLING": ("MEDBOOK_TRANSACTION_POOLING", "off"),
    "PREPARED_STATEMENTS": ("MEDBOOK_PREPARED_STATEMENTS", "on"),
    "PUBLIC_URL": ("MEDBOOK_PUBLIC_URL", None),
}


def load_config(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Settings from the environment (typed like their defaults), then overrides."""
    config: dict[str, Any] = {}
    for key, (env, default) in DEFAULTS.items():
        raw = os.environ.get(env)
        if raw is None:
            config[key] = default
        elif isinstance(default, bool) or default is None or isinstance(default, str):
            config[key] = raw
        else:
            config[key] = type(default)(raw)
    config.update(overrides or {})
    return config


def create_app(config: dict[str, Any] | None = None) -> Flask:
    settings = load_config(config)
    if not settings["DATABASE_URL"]:
        raise RuntimeError("DATABASE_URL is not set")
    if not settings["JWT_SECRET"]:
        raise RuntimeError("MEDBOOK_JWT_SECRET is not set")

    app = Flask(__name__, static_folder=None)  # no /static route: every route is in api/openapi.json
    app.config.update(settings)
    app.json.sort_keys = False
    app.json.compact = True

    db = Database(
        settings["DATABASE_URL"],
        role=settings["DB_ROLE"] or None,
        min_size=settings["POOL_MIN_SIZE"],
        max_size=settings["POOL_MAX_SIZE"],
        timeout=settings["POOL_TIMEOUT"],
        lock_timeout_ms=settings["LOCK_TIMEOUT_MS"],
        statement_timeout_ms=settings["STATEMENT_TIMEOUT_MS"],
        idle_in_transaction_timeout_ms=settings["IDLE_IN_TRANSACTION_TIMEOUT_MS"],
        transaction_pooling=switch("MEDBOOK_TRANSACTION_POOLING", settings["TRANSACTION_POOLING"]),
        prepare=prepare_threshold(str(settings["PREPARED_STATEMENTS"])),
    )
    db.open()
    app.extensions["medbook_db"] = db

    @app.after_request
    def _headers(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    @app.get("/v1/healthz")
    def healthz():
        """200 when the database answers, 503 when it does not (no authentication)."""
        if db.ping():
            return jsonify({"status": "ok"})
        return errors.problem(503, "service_unavailable", "The booking database is unavailable.")

    app.register_blueprint(slots.bp)
    app.register_blueprint(appointments.bp)
    app.register_blueprint(practitioners.bp)
    app.register_blueprint(directory.bp)
    app.register_blueprint(schedules.bp)
    app.register_blueprint(feeds.bp)
    app.register_blueprint(docs.bp)
    fhir.init_app(app)
    errors.register(app)
    observability.init_app(app)
    return app
