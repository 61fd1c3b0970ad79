#!/usr/bin/env python3
"""Set up local virtual environments and run the demo, the tests or the matrix.

    python3 dev.py demo      # run sample jobs and watch them live
    python3 dev.py test      # run every test (pytest arguments may follow)
    python3 dev.py fuzz      # the property tests with many more, random, examples
    python3 dev.py lint      # ruff, mypy, the layers, the generated sync code, the twins, in .venv
    python3 dev.py matrix    # every nox session: lowest and newest versions (noxfile.py)

Only Python 3.10+ and git are needed: the first run creates .venv and installs
jobstatus into it (with the dev extras for `test`, `fuzz` and `matrix`). arq
requires redis-py < 6, which current Celery and Taskiq cannot use, so `test`
runs the arq tests in a second venv, .venv-arq, first, then every other test in
.venv.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MAIN = ROOT / ".venv"
ARQ = ROOT / ".venv-arq"
NO_TESTS_COLLECTED = 5  # pytest's exit code: the arguments selected no arq test


def bin_dir(env: Path) -> Path:
    return env / ("Scripts" if os.name == "nt" else "bin")


def ensure_installed(env: Path, extras: str | None) -> Path:
    """Create ``env`` and install the project (editable) when pyproject.toml changed.

    Returns the venv's python.
    """
    python = bin_dir(env) / "python"
    if not python.exists():
        print(f"creating {env.name} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(env)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    stamp = env / f".installed-{extras or 'core'}-{digest}"
    if stamp.exists():
        return python
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    print(f"installing {target} into {env.name} ...", flush=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-e", target], check=True)
    stamp.touch()
    return python


def pytest(python: Path, lane: str, args: list[str]) -> int:
    """pytest in one venv; JOBSTATUS_TEST_LANE tells tests/conftest.py which tests are its."""
    env = {**os.environ, "JOBSTATUS_TEST_LANE": lane}
    return subprocess.call([str(python), "-m", "pytest", *args], cwd=ROOT, env=env)


def test(args: list[str]) -> int:
    arq = pytest(ensure_installed(ARQ, "arq,redis,test"), "arq", args)
    if arq == NO_TESTS_COLLECTED and args:
        arq = 0
    main = pytest(ensure_installed(MAIN, "dev"), "main", args)
    return main or arq


def property_test_files() -> list[str]:
    """Every test module that uses Hypothesis's ``@given``."""
    return sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("test_*.py")
        if "@given" in path.read_text(encoding="utf-8")
    )


def fuzz(args: list[str]) -> int:
    python = ensure_installed(MAIN, "dev")
    named = any((ROOT / arg.split("::")[0]).exists() for arg in args if not arg.startswith("-"))
    files = [] if named else property_test_files()  # or the tests the arguments name
    return pytest(python, "main", [*files, "--hypothesis-profile=fuzz", *args])


def matrix(args: list[str]) -> int:
    python = ensure_installed(MAIN, "dev")
    return subprocess.call([str(python), str(ROOT / "scripts" / "run_matrix.py"), *args], cwd=ROOT)


# What `lint` runs, in order; each must pass (the matrix's lint session runs the same).
LINTS = [
    ["ruff", "check", "src", "tests", "bench", "scripts", "noxfile.py", "dev.py"],
    ["ruff", "format", "--check", "src", "tests", "bench", "scripts", "noxfile.py", "dev.py"],
    ["mypy"],
    ["lint-imports"],  # the layers of docs/architecture.md, and no import cycles
    ["python", "scripts/unasync.py", "--check"],  # the generated sync code is what _async/ makes
    ["python", "scripts/twins.py", "--max", "80"],  # few hand-written sync/async twin lines
]


def lint(args: list[str]) -> int:
    """Run every check of LINTS in .venv; the first failure's exit status, else 0."""
    ensure_installed(MAIN, "dev")
    for command in LINTS:
        print("$", " ".join(command), flush=True)
        code = subprocess.call([str(bin_dir(MAIN) / command[0]), *command[1:]], cwd=ROOT)
        if code:
            return code
    return 0


def main(argv: list[str]) -> int:
    commands = {"test": test, "fuzz": fuzz, "lint": lint, "matrix": matrix}
    if not argv or argv[0] not in ("demo", *commands):
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        ensure_installed(MAIN, None)
        return subprocess.call([str(bin_dir(MAIN) / "jobstatus"), "demo", *rest])
    return commands[command](rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
