"""``manage.py jobstatus ...`` and the ``jobstatus`` command with ``DJANGO_SETTINGS_MODULE``,
against the test project (tests/django_project) and its PostgreSQL database store."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from io import StringIO

import pytest

import jobstatus
from jobstatus import Job
from jobstatus.stores.base import Store

from .django_project.harness import ROOT, ensure_database, ensure_django, worker_env

pytestmark = [pytest.mark.django, pytest.mark.postgres]

DB_STORE = "django-db://default"


@pytest.fixture(autouse=True)
def _django() -> None:
    ensure_django()
    from jobstatus.integrations.django import conf

    conf.load()


@pytest.fixture
def db_store() -> Iterator[Store]:
    """The project's database store, empty, as this process's store."""
    ensure_database()
    from jobstatus.integrations.django.models import JobStatusRecord

    JobStatusRecord.objects.all().delete()
    store = jobstatus.store_from_url(DB_STORE)
    jobstatus.configure(store=store, includes={"status", "exception"})
    yield store
    JobStatusRecord.objects.all().delete()


def seed() -> None:
    done, failed = Job("done-1", name="shop.export"), Job("failed-1", name="shop.mail")
    for job in (done, failed):
        job.enqueued()
        job.started()
    done.finished()
    failed.finished(RuntimeError("SMTP refused"))
    Job("queued-1", name="shop.later").enqueued()


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``manage.py ARGS`` of the test project (``python -m django`` is the same program)."""
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env={**worker_env(DB_STORE), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_manage_py_jobstatus_lists_gets_and_cancels(db_store: Store) -> None:
    seed()
    listed = manage("jobstatus", "list")
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t")[:3] for line in listed.stdout.splitlines()]
    assert rows == [
        ["queued-1", "queued", "shop.later"],
        ["failed-1", "failed", "shop.mail"],
        ["done-1", "completed", "shop.export"],
    ]
    failed = manage("jobstatus", "list", "--status", "failed", "--json")
    assert '"message": "SMTP refused"' in failed.stdout

    shown = manage("jobstatus", "get", "failed-1")
    assert shown.returncode == 0
    assert "RuntimeError: SMTP refused" in shown.stdout and "shop.mail" in shown.stdout

    cancelled = manage("jobstatus", "cancel", "queued-1", "done-1", "--reason", "closed")
    assert cancelled.stdout.splitlines() == [
        "queued-1: cancel requested",
        "done-1: not cancelled: already completed",
    ]
    assert cancelled.returncode == 7  # manage.py exits with the command's own code
    assert "exit code 7: not cancelled" in cancelled.stderr
    assert jobstatus.get("queued-1")["cancel"]["reason"] == "closed"

    watched = manage("jobstatus", "watch", "done-1", "failed-1")
    assert watched.returncode == 1

    unknown = manage("jobstatus", "get", "ghost")
    assert unknown.returncode == 3
    assert "ghost: unknown in django-db://default" in unknown.stdout


def test_manage_py_jobstatus_has_help_and_refuses_bad_arguments(db_store: Store) -> None:
    helped = manage("help", "jobstatus")
    assert helped.returncode == 0
    assert (
        "list" in helped.stdout and "cancel" in helped.stdout and "exit codes:" in (helped.stdout)
    )
    bad = manage("jobstatus", "get", "x" * 600)
    assert bad.returncode != 0 and "512" in bad.stderr


def test_call_command_writes_to_the_stream_it_is_given(db_store: Store) -> None:
    from django.core.management import CommandError, call_command

    seed()
    out = StringIO()
    call_command("jobstatus", "list", "--status", "completed", stdout=out)
    assert out.getvalue().split("\t")[:2] == ["done-1", "completed"]
    with pytest.raises(CommandError) as raised:
        call_command("jobstatus", "get", "ghost", stdout=StringIO())
    assert raised.value.returncode == 3


def test_the_jobstatus_command_reads_the_database_store_with_django_settings(
    db_store: Store,
) -> None:
    seed()
    env = worker_env(DB_STORE)

    def jobstatus_command(*args: str, **more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "jobstatus", *args],
            cwd=ROOT,
            env={**env, **more},
            capture_output=True,
            text=True,
            timeout=60,
        )

    explicit = jobstatus_command("--store", DB_STORE, "list", "--status", "failed")
    assert explicit.returncode == 0, explicit.stderr
    assert explicit.stdout.split("\t")[:2] == ["failed-1", "failed"]
    from_env = jobstatus_command("get", "done-1", "--json")  # JOBSTATUS_STORE=django-db://...
    assert from_env.returncode == 0, from_env.stderr
    assert '"status": "completed"' in from_env.stdout

    without_settings = {key: value for key, value in env.items()}
    without_settings.pop("DJANGO_SETTINGS_MODULE")
    refused = subprocess.run(
        [sys.executable, "-m", "jobstatus", "--store", DB_STORE, "list"],
        cwd=ROOT,
        env=without_settings,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 4
    assert "set DJANGO_SETTINGS_MODULE=yourproject.settings" in refused.stderr
    assert "manage.py jobstatus" in refused.stderr

    unimportable = jobstatus_command("list", DJANGO_SETTINGS_MODULE="no_such_project.settings")
    assert unimportable.returncode == 4
    assert "DJANGO_SETTINGS_MODULE='no_such_project.settings' cannot be imported" in (
        unimportable.stderr
    )
    assert os.environ.get("DJANGO_SETTINGS_MODULE")  # this process kept its own


def test_the_store_named_in_django_settings_serves_both_commands(db_store: Store) -> None:
    """No JOBSTATUS_STORE anywhere: the store is the one JOBSTATUS["STORE"] names."""
    seed()
    env = worker_env(DB_STORE, JOBSTATUS_TEST_SETTINGS_STORE=DB_STORE)
    env.pop("JOBSTATUS_STORE")
    for command in (["-m", "jobstatus", "list"], ["-m", "django", "jobstatus", "list"]):
        listed = subprocess.run(
            [sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert listed.returncode == 0, listed.stderr
        ids = [line.split("\t")[0] for line in listed.stdout.splitlines()]
        assert ids == ["queued-1", "failed-1", "done-1"], listed.stdout
