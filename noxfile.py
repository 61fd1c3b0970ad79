"""The version matrix: each queue integration, store driver and web framework at its
lowest supported version on the oldest Python and at its newest on the newest Python,
each session running only the tests of what it varies.

    python3 dev.py matrix               # every session, two at a time (scripts/run_matrix.py)
    python3 dev.py matrix celery-lowest # some of them
    .venv/bin/nox -l                    # the list
    python3 noxfile.py --table          # rewrite README.md's tested-matrix table
    python3 noxfile.py --check-table    # exit 1 when that table is not this list

A lowest session pins every requirement of its extras to the minimum pyproject.toml
states (``celery[redis]>=5.3`` installs ``celery==5.3``), so the minimums are, by
construction, the versions tested. A latest session resolves afresh on every run.
Reused virtualenvs are safe: each run resolves the session's requirements and
``uv pip sync`` makes the venv exactly that, removing whatever an earlier run left.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import nox

ROOT = Path(__file__).resolve().parent
PYPROJECT = ROOT / "pyproject.toml"
README = ROOT / "README.md"
OLDEST, NEWEST = "3.10", "3.13"

INTEGRATION_SHARED = [
    "tests/integrations/test_killed_workers.py",
    "tests/integrations/test_options.py",
    "tests/integrations/test_docs.py",
    "tests/integrations/test_queue_docs.py",
    "tests/integrations/test_queue_shutdowns.py",
    "tests/integrations/contract",
]
STORE_SHARED = [
    "tests/contract",
    "tests/test_properties.py",
    "tests/test_store_faults.py",
    "tests/test_scale_expiry.py",
]


@dataclass(frozen=True)
class Session:
    """One nox session: what it installs, on which Python, and which tests it runs.

    Attributes:
        name: the session's name (``celery-lowest``).
        what: the README's name for what it varies.
        python: the interpreter version.
        extras: the project's extras installed (besides ``test``).
        pinned: the extras whose requirements are pinned to their minimums.
        requires: further requirements (``redis>=6,<7``), shown in the table.
        tests: the test files and folders collected.
        marker: the ``-m`` expression that selects what it varies.
        helpers: what the tests need besides, never pinned, not shown.
        pytest_options: further pytest options, each with its reason where it is set.
    """

    name: str
    what: str
    python: str
    extras: tuple[str, ...]
    tests: tuple[str, ...]
    marker: str
    pinned: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    helpers: tuple[str, ...] = ()
    pytest_options: tuple[str, ...] = ()

    @property
    def group(self) -> str:
        """Sessions of one group share queue names and are never run at once."""
        return self.name.rsplit("-", 1)[0]


def _pair(
    group: str,
    what: str,
    extras: tuple[str, ...],
    tests: list[str],
    marker: str,
    pinned: tuple[str, ...] | None = None,
    helpers: tuple[str, ...] = (),
) -> list[Session]:
    """The lowest session on the oldest Python and the latest on the newest."""
    shared = {"what": what, "extras": extras, "tests": tuple(tests), "marker": marker}
    return [
        Session(
            f"{group}-lowest",
            python=OLDEST,
            pinned=extras[:1] if pinned is None else pinned,
            helpers=helpers,
            **shared,  # type: ignore[arg-type]
        ),
        Session(f"{group}-latest", python=NEWEST, helpers=helpers, **shared),  # type: ignore[arg-type]
    ]


def _queue(name: str, what: str, files: list[str], helpers: tuple[str, ...] = ()) -> list[Session]:
    return _pair(name, what, (name, "redis"), [*files, *INTEGRATION_SHARED], name, helpers=helpers)


REDIS_TESTS = [*STORE_SHARED, "tests/test_redis_store.py", "tests/test_redis_cluster.py"]
REDIS_MARKER = "redis or redis_cluster"
# Without its [redis] extra, which caps redis-py below 6: the backend uses Dramatiq's.
DRAMATIQ_HELPERS = ("dramatiq-abort>=1.2",)
DJANGO_HELPERS = (
    "django-tasks-db[compat]>=0.13; python_version < '3.12'",
    "django-tasks-db>=0.13; python_version >= '3.12'",
)

SESSIONS: list[Session] = [
    *_queue("celery", "Celery", ["tests/integrations/test_celery.py"]),
    *_queue("rq", "RQ", ["tests/integrations/test_rq.py"]),
    *_queue(
        "dramatiq",
        "Dramatiq",
        ["tests/integrations/test_dramatiq.py", "tests/integrations/test_dramatiq_abort.py"],
        helpers=DRAMATIQ_HELPERS,
    ),
    *_queue(
        "huey",
        "Huey",
        ["tests/integrations/test_huey.py", "tests/integrations/test_huey_in_process.py"],
    ),
    *_queue("taskiq", "Taskiq (taskiq-redis)", ["tests/integrations/test_taskiq.py"]),
    # arq requires redis<6: it never shares an environment with the others.
    *_queue(
        "arq",
        "arq",
        ["tests/integrations/test_arq.py", "tests/integrations/test_arq_settings.py"],
    ),
    *_pair(
        "django",
        "Django tasks (5.2 with the backport; 6 built in)",
        ("django", "postgres", "redis"),  # redis: the queue contract's gate
        ["tests/test_django_integration.py", "tests/contract", "tests/integrations/contract"],
        "django",
        helpers=DJANGO_HELPERS,
    ),
    Session(
        "redis-lowest",
        "redis-py (Redis, Redis Cluster)",
        OLDEST,
        ("redis",),
        tuple(REDIS_TESTS),
        REDIS_MARKER,
        pinned=("redis",),
    ),
    Session(
        "redis-6",
        "redis-py (Redis, Redis Cluster)",
        "3.11",
        ("redis",),
        tuple(REDIS_TESTS),
        REDIS_MARKER,
        requires=("redis>=6,<7",),
    ),
    Session(
        "redis-7",
        "redis-py (Redis, Redis Cluster)",
        "3.12",
        ("redis",),
        tuple(REDIS_TESTS),
        REDIS_MARKER,
        requires=("redis>=7,<8",),
        # redis-py 7's asyncio cluster client drops a replica node it replaced with its
        # connections open (redis-py#3572): the socket, transport and node warn from
        # __del__ whenever the collector gets there, in whichever test runs then, so a
        # ResourceWarning is no error here. Every other session keeps them errors.
        pytest_options=("-W", "ignore::ResourceWarning"),
    ),
    # On 3.12: Python 3.13.0, this machine's newest, has asyncio's writelines bug on a
    # connection the server dropped (a TypeError, not a ConnectionError redis-py would
    # retry; python/cpython#136234, fixed in later 3.13 releases). The Redis tests drop
    # connections on purpose, so the newest redis-py runs on the newest Python without it.
    Session(
        "redis-latest",
        "redis-py (Redis, Redis Cluster)",
        "3.12",
        ("redis",),
        tuple(REDIS_TESTS),
        REDIS_MARKER,
    ),
    # hiredis parses replies in C once installed (docs/stores.md recommends it): the
    # stores' tests again with it, since its answers reach the stores' decoding.
    Session(
        "redis-hiredis",
        "redis-py with hiredis's parser",
        "3.12",
        ("redis",),
        tuple(REDIS_TESTS),
        REDIS_MARKER,
        requires=("hiredis>=3",),
    ),
    *_pair(
        "memcached",
        "pymemcache",
        ("memcached",),
        [*STORE_SHARED, "tests/test_memcached_store.py"],
        "memcached",
    ),
    *_pair(
        "postgres",
        "psycopg, psycopg-pool",
        ("postgres",),
        [*STORE_SHARED, "tests/test_postgres_store.py"],
        "postgres and not django",
    ),
    *_pair(
        "web",
        "Starlette, uvicorn, Flask",
        ("web", "flask", "django", "redis", "postgres", "memcached", "prometheus"),
        ["tests/web"],
        "web and not browser",
        pinned=("web", "flask"),
        helpers=DJANGO_HELPERS,
    ),
    # The instruments in-process, in multiprocess mode under real Celery and RQ workers,
    # and /metrics on Starlette and Flask (Django's and the network stores' rows are the
    # django and store sessions' to vary).
    *_pair(
        "metrics",
        "prometheus-client, opentelemetry-api",
        ("prometheus", "otel", "web", "flask", "redis", "celery", "rq"),
        [
            "tests/test_metrics.py",
            "tests/test_metrics_serve.py",
            "tests/test_metrics_workers.py",
            "tests/web/test_operators.py",
        ],
        "not (redis_cluster or memcached or postgres or django or browser)",
        pinned=("prometheus", "otel"),
        helpers=("opentelemetry-sdk>=1.30",),  # resolved to the pinned API's release
    ),
]


def pyproject() -> dict[str, object]:
    try:
        import tomllib  # noqa: PLC0415
    except ModuleNotFoundError:  # Python 3.10: nox's own dependency
        import tomli as tomllib  # noqa: PLC0415

    return tomllib.loads(PYPROJECT.read_text())


def minimums(extra: str) -> list[str]:
    """The extra's requirements with each ``>=`` minimum made an exact pin."""
    from packaging.requirements import Requirement  # noqa: PLC0415 - nox's own dependency

    table = pyproject()["project"]["optional-dependencies"]  # type: ignore[index]
    pins = []
    for text in table[extra]:  # type: ignore[index]
        requirement = Requirement(text)
        if requirement.name == "jobstatus":
            continue
        lows = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if len(lows) != 1:
            raise SystemExit(f"pyproject.toml: {text!r} needs one >= minimum to be tested")
        marker = f"; {requirement.marker}" if requirement.marker else ""
        pins.append(f"{requirement.name}=={lows[0]}{marker}")
    return pins


def requirements(session: Session) -> list[str]:
    """Everything the session asks the resolver for."""
    extras = ",".join([*session.extras, "test"])
    pins = [pin for extra in session.pinned for pin in minimums(extra)]
    return [f"-e {ROOT}[{extras}]", *pins, *session.requires, *session.helpers]


def _uv() -> str:
    found = shutil.which("uv")
    if found:
        return found
    from uv import find_uv_bin  # noqa: PLC0415 - the uv package of dev.py's .venv

    return str(find_uv_bin())


def _interesting(session: Session) -> set[str]:
    from packaging.requirements import Requirement  # noqa: PLC0415

    table = pyproject()["project"]["optional-dependencies"]  # type: ignore[index]
    names = {"kombu", "werkzeug", "django-tasks-db"}
    for extra in session.extras:
        for text in table[extra]:  # type: ignore[index]
            names.add(Requirement(text).name.lower())
    return names


def sync(nox_session: nox.Session, wanted: list[str]) -> list[str]:
    """Resolve ``wanted`` afresh and make the venv exactly that; the resolved lines."""
    uv = _uv()
    python = str(Path(nox_session.virtualenv.location) / "bin" / "python")  # type: ignore[union-attr]
    tmp = Path(nox_session.create_tmp())
    given, locked = tmp / "requirements.in", tmp / "requirements.txt"
    given.write_text("\n".join(wanted) + "\n")
    quiet = ["--quiet", "--python", python]
    nox_session.run(uv, "pip", "compile", *quiet, "--no-header", "-o", str(locked), str(given))
    nox_session.run(uv, "pip", "sync", *quiet, str(locked))
    return [line for line in locked.read_text().splitlines() if re.match(r"[A-Za-z]", line)]


def run_session(nox_session: nox.Session, session: Session) -> None:
    """Sync the venv to the session's requirements, show the versions, run the tests."""
    resolved = sync(nox_session, requirements(session))
    names = _interesting(session)
    shown = [line for line in resolved if re.split(r"[=\[ ]", line)[0].lower() in names]
    nox_session.log("versions: " + ", ".join(shown))
    nox_session.run(
        "python", "-m", "pytest", *session.tests, "-m", session.marker, "-q",
        "-p", "no:cacheprovider", *session.pytest_options, *nox_session.posargs,
    )  # fmt: skip


def _python_dirs() -> list[str]:
    """Folders of real interpreters for every version the sessions use.

    A pyenv shim exists for versions it cannot run; nox and uv take the first
    ``pythonX.Y`` on PATH, so the real ones go first.
    """
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    dirs = []
    for version in sorted({session.python for session in SESSIONS} | {OLDEST, NEWEST}):
        for candidate in sorted(pyenv.glob(f"{version}.*/bin")):
            if (candidate / f"python{version}").exists():
                dirs.append(str(candidate))
                break
    return dirs


def define_sessions() -> None:
    """Declare every session to nox (only when nox imports this file)."""
    import nox  # noqa: PLC0415 - `python3 noxfile.py --table` runs without nox

    nox.options.default_venv_backend = "uv"
    nox.options.reuse_venv = "yes"
    nox.options.download_python = "never"
    nox.options.error_on_missing_interpreters = True
    os.environ["PATH"] = os.pathsep.join([*_python_dirs(), os.environ.get("PATH", "")])
    os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")

    for session in SESSIONS:

        def body(nox_session: nox.Session, session: Session = session) -> None:
            run_session(nox_session, session)

        body.__doc__ = f"{session.what}: {describe(session)} on Python {session.python}"
        nox.session(name=session.name, python=session.python)(body)

    for python in (OLDEST, NEWEST):
        for target in ("all", "arq"):

            def extras(nox_session: nox.Session, target: str = target) -> None:
                """pip install '.[TARGET]' in a fresh venv: pip check, then the smoke script."""
                nox_session.install(f"{ROOT}[{target}]")
                nox_session.run("python", "-m", "pip", "check")
                nox_session.run("python", "-m", "pip", "list", "--format=freeze", silent=False)
                nox_session.run("python", str(ROOT / "scripts" / "smoke_extras.py"), target)

            nox.session(
                name=f"extras-{target}-{python}",
                python=python,
                venv_backend="venv",  # pip, as a user installs; never reused
                reuse_venv=False,
            )(extras)

    @nox.session(python="3.13", name="lint")
    def lint(nox_session: nox.Session) -> None:
        """ruff check, ruff format --check, mypy strict with every optional import, the
        layers (import-linter), the check that the generated sync code is what its
        async source makes, and the cap on hand-written sync/async twin lines."""
        sync(nox_session, [f"-e {ROOT}[all]", "ruff", "mypy", "import-linter"])
        # arq cannot install beside [all] (redis<6); mypy only reads its code.
        python = str(Path(nox_session.virtualenv.location) / "bin" / "python")  # type: ignore[union-attr]
        nox_session.run(_uv(), "pip", "install", "--quiet", "--python", python, "--no-deps", "arq")
        nox_session.run("ruff", "check", "src", "tests", "bench", "noxfile.py", "dev.py", "scripts")
        nox_session.run(
            "ruff", "format", "--check", "src", "tests", "bench", "noxfile.py", "dev.py", "scripts"
        )
        nox_session.run("mypy")
        nox_session.run("lint-imports")
        nox_session.run("python", "scripts/unasync.py", "--check")
        nox_session.run("python", "scripts/twins.py", "--max", "80")


def describe(session: Session) -> str:
    """What the session installs, as the README's table shows it."""
    if session.pinned:
        pins = [pin.split(";")[0] for extra in session.pinned for pin in minimums(extra)]
        return ", ".join(pins)
    if session.requires:
        return ", ".join(session.requires)
    return "newest release"


# -- the README's table ---------------------------------------------------------------

START, END = "<!-- matrix:start -->", "<!-- matrix:end -->"


def table() -> str:
    """The tested matrix, one row per session, from SESSIONS."""
    lines = [
        "| what | session | Python | installs | tests |",
        "|---|---|---|---|---|",
        "| everything but arq | `python3 dev.py test` (`.venv`) | the one that runs it "
        "| newest release | every test but arq's |",
        "| arq | `python3 dev.py test` (`.venv-arq`) | the one that runs it "
        '| newest release | `-m "arq"` |',
    ]
    for session in SESSIONS:
        lines.append(
            f"| {session.what} | `{session.name}` | {session.python} | {describe(session)} "
            f'| `-m "{session.marker}"` |'
        )
    lines.append(
        f"| `pip install '.[all]'`, `'.[arq]'` | `extras-all-*`, `extras-arq-*` "
        f"| {OLDEST}, {NEWEST} | newest release, with pip | `pip check`, scripts/smoke_extras.py |"
    )
    lines.append("| ruff, mypy strict | `lint` | 3.13 | `[all]` and arq | src, tests, bench |")
    return "\n".join(lines)


def readme_with_table(text: str) -> str:
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    return f"{before}{START}\n{table()}\n{END}{after}"


def main(argv: list[str]) -> int:
    text = README.read_text()
    if argv == ["--table"]:
        README.write_text(readme_with_table(text))
        return 0
    if argv == ["--check-table"]:
        if readme_with_table(text) != text:
            print("README.md's matrix table is stale: run `python3 noxfile.py --table`")
            return 1
        return 0
    if argv == ["--sessions"]:
        for session in SESSIONS:
            print(session.name, session.group)
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
else:
    define_sessions()
