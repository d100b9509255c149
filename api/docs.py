"""The HTTP contract as data: the OpenAPI document and an interactive reference.

api/openapi.json is the one machine-readable contract of the API. Tests
validate every response they receive against it, and check that every route
the app serves is in it and every operation in it is served. /v1/docs renders
it with Swagger UI, whose files come from the installed flask-swagger-ui
package: the page loads nothing from the internet. The documents it links to
(docs/ERRORS.md, docs/DESIGN.md ...) are served as HTML under /v1/docs/.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import flask_swagger_ui
from flask import Blueprint, Response, current_app, send_from_directory, url_for
from markdown_it import MarkdownIt
from markupsafe import escape

from .errors import ApiError

bp = Blueprint("docs", __name__, url_prefix="/v1")

SWAGGER_UI_DIST = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
# The project's documents the reference links to (docs/), rendered as HTML.
DOCS_DIR = Path(__file__).resolve().parent.parent / "docs"
DOCUMENTS = ("DESIGN.md", "ERRORS.md", "OPERATIONS.md", "ERD.md", "PERFORMANCE.md")
DOCUMENT_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <style>
    body {{ font-family: sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
    table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 0.2rem 0.5rem; }}
    pre {{ background: #f6f8fa; padding: 0.75rem; overflow-x: auto; }}
  </style>
</head>
<body><p><a href="{reference}">API reference</a></p>
{body}</body>
</html>
"""
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")

# The files the page needs; nothing else of the distribution is served.
ASSETS = frozenset({"swagger-ui.css", "index.css", "swagger-ui-bundle.js",
                    "swagger-ui-standalone-preset.js", "favicon-32x32.png", "favicon-16x16.png"})

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>{title}</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <link rel="stylesheet" href="{assets}/index.css">
  <link rel="icon" type="image/png" href="{assets}/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script src="{assets}/swagger-ui-standalone-preset.js"></script>
  <script>
    window.onload = function () {{
      window.ui = SwaggerUIBundle({{
        url: {spec_url},
        dom_id: "#swagger-ui",
        deepLinking: true,
        validatorUrl: null,
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        layout: "StandaloneLayout"
      }});
    }};
  </script>
</body>
</html>
"""


def _load(package: str) -> dict[str, Any]:
    return json.loads(resources.files(package).joinpath("openapi.json").read_text(encoding="utf-8"))


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI document shipped with the package: api/openapi.json, with the FHIR facade's
    operations (api/fhir/openapi.json: its paths, tags and components) merged in."""
    document, fhir = _load(__package__), _load(f"{__package__}.fhir")
    document["tags"] = [*document["tags"], *fhir["tags"]]
    document["paths"] = {**document["paths"], **fhir["paths"]}
    for kind, entries in fhir["components"].items():
        clash = set(entries) & set(document["components"].get(kind, {}))
        if clash:
            raise RuntimeError(f"api/fhir/openapi.json redefines components.{kind}: {sorted(clash)}")
        document["components"][kind] = {**document["components"].get(kind, {}), **entries}
    return document


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document of this API (no authentication)."""
    return current_app.response_class(json.dumps(openapi_document()), mimetype="application/json")


@bp.get("/docs")
def docs():
    """The interactive API reference (no authentication)."""
    assets = url_for("docs.docs") + "/assets"
    page = PAGE.format(title=escape(openapi_document()["info"]["title"]), assets=assets,
                       spec_url=json.dumps(url_for("docs.openapi")))
    return Response(page, mimetype="text/html")


@bp.get("/docs/assets/<filename>")
def docs_asset(filename: str):
    """One file of the installed Swagger UI distribution (no authentication)."""
    if filename not in ASSETS:
        raise ApiError(404, "No such resource.")
    return send_from_directory(SWAGGER_UI_DIST, filename, conditional=False, max_age=0)


@bp.get("/docs/<document>")
def document(document: str):
    """One of the project's documents (docs/ERRORS.md, docs/DESIGN.md ...) as HTML (no authentication)."""
    path = DOCS_DIR / document
    if document not in DOCUMENTS or not path.is_file():
        raise ApiError(404, "No such resource.")
    page = DOCUMENT_PAGE.format(title=escape(document), reference=url_for("docs.docs"),
                                body=_MARKDOWN.render(path.read_text(encoding="utf-8")))
    return Response(page, mimetype="text/html")
