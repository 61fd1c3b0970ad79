"""The jobstatus command, run as a user runs it: a real subprocess, in a real terminal
(a pty of a given width, with colours) or piped."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import jobstatus
from jobstatus import Job
from jobstatus._record import Change
from jobstatus.cli import build_parser
from jobstatus.cli._exit_codes import MEANINGS
from jobstatus.stores import SQLiteStore

from ._terminal import has_colour, run_in_terminal

README = Path(__file__).parent.parent / "README.md"
RED, GREEN, MAGENTA = "31", "32", "35"


@pytest.fixture
def url(tmp_path: Path) -> str:
    store_url = f"sqlite:///{tmp_path / 'cli.db'}"
    jobstatus.configure(store=store_url, includes={"status", "exception"})
    return store_url


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobstatus", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@jobstatus.track(name="reports.export")
def export(rows: int) -> None:
    status = jobstatus.current()
    status.progress.total = rows
    for _ in range(rows):
        status.progress.increment()


@jobstatus.track(name="mail.send")
def send_mail() -> None:
    raise RuntimeError("SMTP refused: 550 mailbox unavailable\nthe second line")


def seed() -> dict[str, str]:
    """A completed, a failed, a stale (working, silent) and a queued job, oldest first."""
    export(4)
    with pytest.raises(RuntimeError):
        send_mail()
    stuck = Job("stuck-" + "x" * 70, name="import.rows")  # longer than any column
    stuck.enqueued()
    stuck.started()  # never entered: no heartbeat, so it goes stale
    stuck.status.update(progress=3, total=10, force=True)
    Job("waiting", name="later").enqueued()
    return {s.name or "": s.job_id for s in jobstatus.recent(limit=10)}


# -- list ------------------------------------------------------------------------------


def test_list_in_a_terminal_folds_ids_never_cuts_them_and_colours_states(url: str) -> None:
    ids = seed()
    wide = run_in_terminal("list", "--store", url, "--stale-after", "0.001", columns=140)
    assert wide.returncode == 0, wide.raw
    lines = wide.screen.splitlines()
    assert lines[0].split() == ["job", "name", "status", "progress", "age", "error"]
    by_id = {line.split()[0]: line for line in lines[1:] if line and line[0] != " "}
    failed = by_id[ids["mail.send"]]
    assert "mail.send" in failed and "RuntimeError: SMTP refused" in failed
    assert "second line" not in wide.screen  # the first line of a message only
    stuck = next(line for line in lines if line.startswith("stuck-"))  # its id folds
    assert "import.rows" in stuck and "stale" in stuck and "30%" in stuck
    assert "100%" in by_id[ids["reports.export"]]
    assert has_colour(wide.raw, "failed", RED) and has_colour(wide.raw, "completed", GREEN)
    assert "4 jobs in the store: 1 queued, 1 working (1 stale), 1 completed, 1 failed" in (
        wide.screen
    )

    narrow = run_in_terminal("list", "--store", url, "--stale-after", "0.001", columns=72)
    assert narrow.returncode == 0
    job_column = narrow.screen.splitlines()[0].index("name")
    folded = "".join(
        line[:job_column].strip() for line in narrow.screen.splitlines()[1:] if line.strip()
    )
    for job_id in ids.values():
        assert job_id in folded  # whole, in order, on one or more lines
    assert "…" not in folded


def test_list_piped_prints_one_job_per_line_tab_separated(url: str) -> None:
    ids = seed()
    piped = run("list", "--store", url, "--stale-after", "3600")
    assert piped.returncode == 0, piped.stderr
    assert "\x1b[" not in piped.stdout
    rows = [line.split("\t") for line in piped.stdout.splitlines()]
    assert all(len(row) == 6 for row in rows)  # job_id status name progress updated_at error
    assert [row[0] for row in rows] == [
        "waiting",
        ids["import.rows"],
        ids["mail.send"],
        ids["reports.export"],
    ]
    assert rows[2][1:4] == ["failed", "mail.send", ""]
    assert rows[2][5] == "RuntimeError: SMTP refused: 550 mailbox unavailable"
    assert rows[1][1:4] == ["working", "import.rows", "30%"]
    assert jobstatus.get(rows[2][0]).is_failed  # an id copied from a line works as it is


def test_list_json_has_the_store_counts_and_pages_with_before(url: str) -> None:
    ids = seed()
    first = json.loads(run("list", "--store", url, "--json", "--limit", "2").stdout)
    assert first["counts"] == {**jobstatus.counts(), "stale": 0}
    assert [job["job_id"] for job in first["jobs"]] == ["waiting", ids["import.rows"]]
    assert first["jobs"][1]["name"] == "import.rows"
    rest = json.loads(
        run(
            "list", "--store", url, "--json", "--limit", "5", "--before", first["next_before"]
        ).stdout
    )
    assert [job["job_id"] for job in rest["jobs"]] == [ids["mail.send"], ids["reports.export"]]
    assert rest["next_before"] is None
    assert rest["jobs"][0]["exception"]["class"] == "RuntimeError"


def test_list_searches_by_name_prefix_and_status(url: str) -> None:
    ids = seed()
    by_name = run("list", "--store", url, "--name", "mail.send").stdout.split()
    assert by_name[0] == ids["mail.send"]
    by_prefix = run("list", "--store", url, "--prefix", "stuck-").stdout.splitlines()
    assert [line.split("\t")[0] for line in by_prefix] == [ids["import.rows"]]
    failed = run("list", "--store", url, "--status", "failed").stdout.splitlines()
    assert [line.split("\t")[0] for line in failed] == [ids["mail.send"]]
    nothing = run_in_terminal("list", "--store", url, "--status", "cancelled", "--name", "x")
    assert "no jobs with status cancelled, name x" in nothing.screen
    assert "4 jobs in the store" in nothing.screen  # the counts are the store's, not the page's


def test_list_in_a_terminal_says_how_to_get_the_next_page(url: str) -> None:
    seed()
    page = run_in_terminal("list", "--store", url, "--limit", "2", columns=120)
    before = re.search(r"more: add --before (\S+) for the next page", page.screen)
    assert before is not None, page.screen
    rest = run("list", "--store", url, "--before", before[1].strip("'"))
    assert len(rest.stdout.splitlines()) == 2


# -- get -------------------------------------------------------------------------------


def test_get_prints_json_and_says_unknown_naming_the_store(url: str) -> None:
    job = Job("cli-job")
    job.started()
    job.status.update(step="A", total=4, progress=1, force=True)
    result = run("get", "cli-job", "--json", "--store", url)
    assert result.returncode == 0
    record = json.loads(result.stdout)
    assert record["status"] == "working" and record["step"] == "A"
    human = run("get", "cli-job", "--store", url)
    assert "working" in human.stdout and "1 / 4 (25%)" in human.stdout
    missing = run("get", "no-such-job", "--store", url)
    assert missing.returncode == 3
    assert f"no-such-job: unknown in {url} (never recorded there, or expired)" in missing.stdout


def test_get_shows_name_times_duration_attempts_error_and_history(url: str) -> None:
    job = Job("retried", name="reports.export")
    job.enqueued()
    job.started()
    job.retrying(ValueError("the database was busy"))
    job.started()
    job.finished(RuntimeError("disk full"))
    shown = run_in_terminal("get", "retried", "--store", url, columns=100)
    assert shown.returncode == 0
    fields = dict(
        (line[:10].strip(), line[10:].strip())
        for line in shown.screen.splitlines()
        if line[:10].strip()
    )
    assert fields["name"] == "reports.export"
    assert fields["status"] == "failed" and has_colour(shown.raw, "failed", RED)
    assert fields["attempts"] == "2"
    assert fields["error"] == "RuntimeError: disk full"
    assert re.fullmatch(r"\d\.\ds", fields["duration"])
    assert fields["started"].endswith("UTC") and fields["finished"].endswith("UTC")
    history = [line.split()[2:] for line in shown.screen.split("history")[1].splitlines()[1:]]
    assert history == [
        ["queued"],
        ["working", "attempt", "1"],
        ["queued", "attempt", "1"],
        ["working", "attempt", "2"],
        ["failed", "attempt", "2"],
    ]


def test_get_says_stale_instead_of_an_eta_for_a_silent_job(url: str) -> None:
    job = Job("silent")
    job.started()  # and then nothing: its worker died
    job.status.update(progress=5, total=100, force=True)
    alive = run("get", "silent", "--store", url, "--stale-after", "3600")
    assert "eta" in alive.stdout and "stale" not in alive.stdout
    time.sleep(0.3)  # older than --stale-after below, however slow the machine
    dead = run("get", "silent", "--store", url, "--stale-after", "0.2")
    assert "working (stale)" in dead.stdout and "its worker probably died" in dead.stdout
    assert "eta" not in dead.stdout and "then silent" in dead.stdout


def test_get_and_watch_show_a_groups_children(url: str) -> None:
    group = jobstatus.group(name="import")
    done, running = Job("child-1", parent=group), Job("child-2", parent=group)
    done.started()
    done.finished()
    running.started()
    shown = run("get", group.job_id, "--store", url)
    assert "children  1 working, 1 completed" in shown.stdout
    watched = run_in_terminal("watch", group.job_id, "--store", url, "--timeout", "1")
    assert watched.returncode == 5  # the timeout: the group is still working
    assert "1 working, 1 completed" in watched.screen


# -- watch -----------------------------------------------------------------------------


def test_watch_exit_codes(url: str) -> None:
    ok, bad, stopped = Job("ok"), Job("bad"), Job("stopped")
    for job in (ok, bad, stopped):
        job.started()

    def finish() -> None:
        time.sleep(0.8)
        ok.status.progress.total = 2
        ok.status.progress.increment(2)
        ok.finished()
        bad.finished(RuntimeError("nope"))
        stopped.cancelled()

    thread = threading.Thread(target=finish)
    thread.start()
    assert run("watch", "ok", "--store", url).returncode == 0
    thread.join()
    assert run("watch", "ok", "bad", "stopped", "--store", url).returncode == 1  # failed wins
    assert run("watch", "ok", "stopped", "--store", url).returncode == 6
    unknown = run("watch", "ok", "ghost", "--store", url)
    assert unknown.returncode == 3 and f"ghost: unknown in {url}" in unknown.stderr


def test_watch_in_a_terminal_shows_live_bars_to_the_end(url: str) -> None:
    job = Job("live", name="reports.export")
    job.started()
    job.status.progress.total = 10

    def work() -> None:
        for _ in range(10):
            time.sleep(0.1)
            job.status.progress.increment()
        job.finished()

    thread = threading.Thread(target=work)
    thread.start()
    watched = run_in_terminal("watch", "live", "--store", url, columns=90)
    thread.join()
    assert watched.returncode == 0
    assert re.search(r"reports\.export\s+completed\s+━+\s+100%", watched.screen), watched.screen
    assert has_colour(watched.raw, "completed", GREEN)


def test_watch_shows_the_attempt_of_a_retried_job(url: str) -> None:
    job = Job("retried", name="reports.export")
    job.started()
    job.retrying(ValueError("flaky"))
    job.started()
    job.status.update(progress=5, total=10, force=True)
    watched = run_in_terminal("watch", "retried", "--store", url, "--timeout", "0.5", columns=100)
    assert re.search(r"reports\.export\s+working.*attempt 2", watched.screen), watched.screen
    job.finished()
    watched = run_in_terminal("watch", "retried", "--store", url, columns=100)
    assert watched.returncode == 0 and "2 attempts" in watched.screen, watched.screen


def test_watch_ends_and_says_stale_for_a_dead_job(url: str) -> None:
    dead = Job("dead")
    dead.started()  # its worker was killed: no more writes, no heartbeat
    dead.status.update(progress=60, total=100, force=True)
    time.sleep(0.3)
    watched = run_in_terminal("watch", "dead", "--store", url, "--stale-after", "0.2")
    assert watched.returncode == 5
    assert "working (stale)" in watched.screen and "eta" not in watched.screen
    assert "jobstatus: job dead is stale: no write or heartbeat for" in watched.screen
    piped = run("watch", "dead", "--store", url, "--stale-after", "0.2")
    assert piped.returncode == 5 and piped.stdout.startswith("dead\tstale\t")


def test_watch_piped_prints_a_line_per_job_as_it_ends(url: str) -> None:
    ok, bad = Job("ok"), Job("bad")
    ok.started()
    ok.finished()
    bad.started()
    bad.finished(ValueError("boom"))
    piped = run("watch", "ok", "bad", "--store", url)
    assert piped.returncode == 1
    lines = sorted(line.split("\t") for line in piped.stdout.splitlines())
    assert [line[:2] for line in lines] == [["bad", "failed"], ["ok", "completed"]]
    assert lines[0][3] == "ValueError: boom"


# -- cancel ----------------------------------------------------------------------------


def test_cancel_says_per_id_whether_it_was_recorded(url: str) -> None:
    queued, working, done = Job("queued-1"), Job("working-1"), Job("done-1")
    queued.enqueued()
    working.started()
    done.started()
    done.finished()
    result = run("cancel", "queued-1", "working-1", "--reason", "not needed", "--store", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "queued-1: cancel requested",
        "working-1: cancel requested",
    ]
    assert jobstatus.get("queued-1")["cancel"]["reason"] == "not needed"
    assert jobstatus.get("working-1").cancel_requested

    finished = run("cancel", "done-1", "--store", url)
    assert finished.returncode == 7
    assert finished.stdout == "done-1: not cancelled: already completed\n"
    assert "cancel" not in jobstatus.get("done-1")

    mixed = run("cancel", "done-1", "ghost", "--store", url)
    assert mixed.returncode == 3  # an unknown id wins over a finished job
    assert f"ghost: unknown in {url} (never recorded there, or expired): not cancelled" in (
        mixed.stdout
    )
    shown = run_in_terminal("get", "working-1", "--store", url)
    assert "cancel requested" in shown.screen and "not needed" in shown.screen
    assert has_colour(shown.raw, "working", "36")


def test_cancel_checks_every_id_and_the_reason_before_sending_any(url: str) -> None:
    Job("first").enqueued()
    bad_id = run("cancel", "first", "x" * 600, "--store", url)
    assert bad_id.returncode == 2 and "512" in bad_id.stderr
    too_long = run("cancel", "first", "--reason", "r" * 1001, "--store", url)
    assert too_long.returncode == 2 and "1000" in too_long.stderr
    assert not jobstatus.get("first").cancel_requested


# -- exit codes, help, version ---------------------------------------------------------


def test_exit_codes_are_distinct_and_listed_in_the_help(url: str) -> None:
    Job("slow").started()  # the store file exists, the job never ends
    assert len(set(MEANINGS)) == len(MEANINGS)
    help_text = run("--help").stdout
    for code, meaning in MEANINGS.items():
        assert f"  {code:<4} {meaning}\n" in help_text
    assert run("get").returncode == 2  # usage: a missing argument
    assert run("list", "--limit", "0", "--store", url).returncode == 2
    assert run("watch", "a", "--timeout", "-1", "--store", url).returncode == 2
    assert run("get", "x" * 600, "--store", url).returncode == 2  # a malformed id
    assert run("get", "ghost", "--store", url).returncode == 3
    bad_store = run("--store", "bogus://x", "get", "a")
    assert bad_store.returncode == 4 and "unknown store URL" in bad_store.stderr
    timed_out = run("watch", "slow", "--timeout", "0.3", "--store", url)
    assert timed_out.returncode == 5 and "timed out" in timed_out.stderr


def test_every_command_has_a_description_and_examples() -> None:
    version = run("--version")
    assert version.returncode == 0 and version.stdout == f"jobstatus {jobstatus.__version__}\n"
    top = run("--help").stdout
    commands = ["list", "get", "watch", "cancel", "demo", "serve", "migrate", "purge"]
    for command in commands:
        assert re.search(rf"^    {command}\s+\S", top, re.M), f"{command} has no summary"
        shown = run(command, "--help")
        assert shown.returncode == 0
        assert "examples:\n  jobstatus" in shown.stdout, f"{command} --help has no examples"
        assert shown.stdout.split("\n\n")[1].strip(), f"{command} --help has no description"


PLACEHOLDERS = {
    "ID": "some-id",
    "S": "failed",
    "NAME": "reports.export",
    "UPDATED_AT": "2026-12-01T10:00:00+00:00",
    "TEXT": "why",
    "SECONDS": "5",
    "URL": "sqlite:///x.db",
    "KEY": "exception",
}


def test_the_readmes_command_lines_parse() -> None:
    """Every line of the README's command block is a command the parser takes."""
    block = README.read_text().split("## Command line", 1)[1].split("```sh\n", 1)[1]
    lines = [line.split("#")[0].strip() for line in block.split("```", 1)[0].splitlines()]
    shown = [line.split() for line in lines if line]
    parser = build_parser()
    for words in shown:
        assert words[0] == "jobstatus"
        args = [
            PLACEHOLDERS.get(word, word)
            for word in " ".join(words[1:]).replace("[", " ").replace("]", " ").split()
            if word != "..."
        ]
        if args == ["--version"]:
            continue
        parser.parse_args(args)  # a usage error exits the test
    assert {words[1] for words in shown} >= {
        "list",
        "get",
        "watch",
        "cancel",
        "demo",
        "serve",
        "migrate",
        "purge",
    }


# -- guards against split stores -------------------------------------------------------


@pytest.mark.parametrize("command", [["get", "abc"], ["list"], ["watch", "abc"], ["cancel", "abc"]])
def test_read_commands_refuse_a_missing_sqlite_file_and_create_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    result = run("--store", f"sqlite:///{missing}", *command)
    assert result.returncode == 4
    assert f"no SQLite file at {missing}" in result.stderr
    assert not (tmp_path / "no").exists()


def test_a_missing_per_user_default_file_is_named_as_such(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = subprocess.run(
        [sys.executable, "-m", "jobstatus", "list"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(cache)},
    )
    assert result.returncode == 4
    assert f"per-user default store {cache / 'jobstatus' / 'jobstatus.db'}" in result.stderr
    assert "another user or in a container" in result.stderr
    assert not cache.exists()


@pytest.mark.parametrize("command", [["get", "abc"], ["list"], ["cancel", "a"], ["demo"]])
def test_memory_is_refused_by_commands_that_need_another_processs_store(
    command: list[str],
) -> None:
    result = run("--store", "memory://", *command)
    assert result.returncode == 4
    assert "memory:// keeps statuses in this process's memory" in result.stderr
    assert "the jobstatus command, a process of its own, cannot see them" in result.stderr


# -- the rest --------------------------------------------------------------------------


def test_demo_runs_to_completion(url: str) -> None:
    started = time.monotonic()
    result = run("--store", url, "demo")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    assert "4 completed, 1 failed" in result.stdout
    assert len(jobstatus.recent()) == 5
    failed = jobstatus.recent(status="failed")
    assert len(failed) == 1 and "SMTP" in failed[0]["exception"]["message"]
    export = [s for s in jobstatus.recent(status="completed") if s.get("path") == "report.csv"]
    assert export and export[0].progress.current == 6000  # throttled, nothing lost


def test_job_data_is_never_read_as_terminal_markup(url: str) -> None:
    job = Job("markup")
    job.started()
    job.status["step"] = "[red]not red[/red] [bold]"
    result = run("get", "markup", "--store", url)
    assert result.returncode == 0
    assert "[red]not red[/red] [bold]" in result.stdout
    shown = run_in_terminal("list", "--store", url)
    assert "\x1b[31mnot red" not in shown.raw


def test_output_cut_short_by_a_closed_pipe_is_quiet(url: str) -> None:
    for n in range(200):
        Job(f"many-{n}").enqueued()
    pipeline = subprocess.run(
        f"{sys.executable} -m jobstatus list --json --limit 200 --store {url} | head -c 10",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert pipeline.stdout == '{\n  "count'
    assert "Traceback" not in pipeline.stderr


def test_purge_deletes_expired_records_now(url: str) -> None:
    store = SQLiteStore(url.removeprefix("sqlite:///"))
    for n in range(3):
        store.write(f"old-{n}", Change(set={"status": "completed"}, ttl=0.2, finished_ttl=0.2))
    store.write("kept", Change(set={"status": "completed"}, ttl=600, finished_ttl=600))
    time.sleep(0.5)
    result = run("purge", "--store", url)
    assert result.returncode == 0, result.stderr
    assert "removed 3 expired records" in result.stdout
    assert jobstatus.get("kept").status == "completed"
    again = run("purge", "--store", url)
    assert "removed 0 expired records" in again.stdout
    by_itself = run("purge", "--store", "memory://")
    assert by_itself.returncode == 0 and "removes expired records by itself" in by_itself.stdout


def test_serve_needs_the_web_extra_only_when_it_runs(url: str) -> None:
    without_web = (
        "import sys; sys.modules['starlette'] = sys.modules['uvicorn'] = None; "
        "from jobstatus.cli import main; sys.exit(main(sys.argv[1:]))"
    )

    def run_without_web(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", without_web, *args], capture_output=True, text=True, timeout=60
        )

    assert "serve" in run_without_web("--help").stdout
    Job("one").enqueued()
    assert run_without_web("list", "--store", url).returncode == 0
    served = run_without_web("serve", "--store", url)
    assert served.returncode == 4 and "jobstatus[web]" in served.stderr


def imports_of(path: Path, module: str, modules: set[str]) -> set[str]:
    """The ``modules`` that ``path`` (module ``module``) imports anywhere, in functions too."""
    import ast

    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.add(name if name in modules else base)
    return found & modules


def test_the_cli_and_web_modules_import_without_a_cycle() -> None:
    """No cycle through a cli or web module, not even one hidden in a function."""
    root = Path(jobstatus.__file__).parent
    files = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {module: imports_of(path, module, set(files)) for module, path in files.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for name in graph.get(todo.pop(), ()):
                if name == goal:
                    return True
                if name not in seen:
                    seen.add(name)
                    todo.append(name)
        return False

    ours = [m for m in graph if m.startswith(("jobstatus.cli", "jobstatus.web"))]
    assert len(ours) >= 14
    assert [m for m in ours if reaches(m, m)] == []


def test_migrate_says_when_a_store_needs_none(url: str) -> None:
    result = run("migrate", "--store", url)
    assert result.returncode == 0, result.stderr
    assert "needs no migration" in result.stdout
