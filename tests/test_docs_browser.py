"""/v1/docs opened in a real headless browser lists every operation of the contract.

The app is served by a real HTTP server (werkzeug, in a thread, on 127.0.0.1
and a free port); Debian's chromium (installed by .ci/run) loads the page,
runs Swagger UI from the locally served assets, fetches /v1/openapi.json and
renders it; --dump-dom prints the DOM after the scripts ran. Every
(method, path) of api/openapi.json must appear as a rendered operation.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator

import pytest
from werkzeug.serving import make_server

from api.docs import openapi_document

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--virtual-time-budget=20000"]


def chromium() -> str:
    path = os.environ.get("MEDBOOK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if path:
        return path
    message = "chromium is not installed (apt-get install chromium; .ci/run does this)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def served_app(app) -> Iterator[str]:
    """Base URL of the app served over real HTTP on 127.0.0.1."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def rendered_operations(dom: str) -> set[tuple[str, str]]:
    """(METHOD, path) of each operation block Swagger UI rendered."""
    pattern = re.compile(r'<span class="opblock-summary-method">([A-Z]+)</span>'
                         r'.*?<span class="opblock-summary-path" data-path="([^"]*)"', re.S)
    return {(method, html.unescape(path)) for method, path in pattern.findall(dom)}


def test_docs_page_lists_every_operation_in_headless_chromium(served_app, tmp_path):
    browser = chromium()
    result = subprocess.run(  # noqa: S603 (a fixed argv: the browser and our own URL)
        [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
         f"{served_app}/v1/docs"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert 'id="swagger-ui"' in dom
    assert "Failed to load API definition" not in dom, dom[:2000]
    documented = {(method.upper(), path) for path, item in openapi_document()["paths"].items()
                  for method in item if method in HTTP_METHODS}
    rendered = rendered_operations(dom)
    missing = sorted(documented - rendered)
    assert not missing, f"operations not listed on /v1/docs: {missing}; rendered: {sorted(rendered)}"
    assert openapi_document()["info"]["title"] in dom
