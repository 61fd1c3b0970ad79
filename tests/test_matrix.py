"""The README's tested-matrix table is the one noxfile.py's session list gives."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_matrix_table_is_generated_from_the_session_list() -> None:
    check = subprocess.run(
        [sys.executable, "noxfile.py", "--check-table"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    listed = subprocess.run(
        [sys.executable, "noxfile.py", "--sessions"], cwd=ROOT, capture_output=True, text=True
    )
    readme = (ROOT / "README.md").read_text()
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert "celery-lowest" in names and "redis-6" in names
    assert all(f"| `{name}` |" in readme for name in names)
