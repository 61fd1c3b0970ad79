#!/usr/bin/env python3
"""Set up a local virtual environment and run the demo or the tests.

    python3 dev.py demo     # run sample jobs and watch them live
    python3 dev.py test     # run every test (pytest arguments may follow)
    python3 dev.py lint     # ruff, mypy, and the generated sync stores' check

Only Python 3.10+ and git are needed: the first run creates .venv and installs
jobstatus into it (with the test extras for `test`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")


def ensure_installed(extra: str | None) -> None:
    """Create .venv and install the project (editable) when pyproject.toml changed."""
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = VENV / f".installed-{extra or 'core'}-{digest}"
    if stamp.exists():
        return
    target = f"{ROOT}[{extra}]" if extra else str(ROOT)
    print(f"installing {target} into .venv ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-e", target], check=True)
    stamp.touch()


# What `lint` runs, in order; each must pass.
LINTS = [
    ["ruff", "check", "src", "tests", "bench", "scripts"],
    ["ruff", "format", "--check", "src", "tests", "bench", "scripts"],
    ["mypy"],
    ["python", "scripts/unasync.py", "--check"],  # stores/_sync/ is what _async/ makes
]


def lint() -> int:
    """Run every check of LINTS; the first failure's exit status, else 0."""
    for command in LINTS:
        print("$", " ".join(command), flush=True)
        code = subprocess.call([str(BIN / command[0]), *command[1:]], cwd=ROOT)
        if code:
            return code
    return 0


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test", "lint"):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        ensure_installed(None)
        return subprocess.call([str(BIN / "jobstatus"), "demo", *rest])
    if command == "lint":
        ensure_installed("dev")
        return lint()
    ensure_installed("dev")
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *rest], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
