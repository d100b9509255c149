"""docs/ERD.md's Mermaid diagram is valid: Mermaid itself parses and renders it.

The drift test checks that the diagram names the right tables and columns; this
one checks that a reader (or GitHub) can see it. mermaid.min.js comes from the
npm registry's `mermaid` package, fetched by .ci/run (`npm pack`), and is
pointed to by MEDBOOK_MERMAID_JS; Debian's headless chromium runs it on a page
holding the diagram and reports either the rendered SVG or Mermaid's parse error.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT
from test_docs_browser import CHROMIUM_FLAGS, chromium

PAGE = """<!DOCTYPE html>
<html><body>
<pre class="mermaid">{diagram_html}</pre>
<div id="result">pending</div>
<script src="{script}"></script>
<script>
  mermaid.initialize({{startOnLoad: false}});
  mermaid.parse({diagram_json})
    .then(() => mermaid.run())
    .then(() => {{ document.getElementById("result").textContent =
                     "RENDERED " + document.querySelector("svg").textContent; }})
    .catch(error => {{ document.getElementById("result").textContent = "ERROR " + error; }});
</script>
</body></html>
"""


def mermaid_js() -> Path:
    path = os.environ.get("MEDBOOK_MERMAID_JS")
    if path and Path(path).is_file():
        return Path(path)
    message = "MEDBOOK_MERMAID_JS does not name mermaid.min.js (.ci/run fetches it with npm pack mermaid)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def render(diagram: str, tmp_path: Path) -> str:
    """The text of #result after chromium ran Mermaid on the diagram."""
    script = mermaid_js()
    page = tmp_path / "erd.html"
    page.write_text(PAGE.format(diagram_html=html.escape(diagram), diagram_json=json.dumps(diagram),
                                script=script.resolve().as_uri()))
    result = subprocess.run(  # noqa: S603 (a fixed argv: the browser and our own file)
        [chromium(), *CHROMIUM_FLAGS, "--allow-file-access-from-files",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'<div id="result">(.*?)</div>', result.stdout, flags=re.S)
    assert found, result.stdout[-2000:]
    return html.unescape(found.group(1))


def erd_diagram() -> str:
    found = re.search(r"```mermaid\n(.*?)```", (ROOT / "docs" / "ERD.md").read_text(), flags=re.S)
    assert found, "docs/ERD.md has no mermaid block"
    return found.group(1)


def test_erd_renders_with_mermaid(tmp_path):
    result = render(erd_diagram(), tmp_path)
    assert result.startswith("RENDERED"), result
    for table in ("users", "practitioners", "availability_slots", "appointments", "appointment_history"):
        assert table in result


def test_a_broken_diagram_is_reported(tmp_path):
    broken = erd_diagram().replace("users ||--o| practitioners", "users ||--oX practitioners")
    assert broken != erd_diagram()
    assert render(broken, tmp_path).startswith("ERROR")
