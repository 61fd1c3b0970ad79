"""docs/web.md's Python examples run, in order, as a reader would paste them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "web.md"

pytestmark = pytest.mark.web


def test_the_web_doc_examples_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 2
    script = tmp_path / "web_doc.py"
    script.write_text("\n".join(blocks))
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3", "404", "completed", "1"]


def test_the_route_table_of_the_doc_lists_every_route() -> None:
    from jobstatus.web.routes import ROUTES

    text = DOC.read_text()
    for route in ROUTES:
        shown = route.pattern(lambda name: f"{{{name}}}", lambda name: "{id}")
        assert f"| `{route.method} {shown}" in text, f"docs/web.md does not list {route.name}"
