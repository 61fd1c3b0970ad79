"""arq's ``track()`` on its own, in this process: settings as a dict or a class, hooks kept."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import jobstatus
from jobstatus import ConfigurationError

pytest.importorskip("arq")

from arq import func  # noqa: E402

from jobstatus.integrations.arq import options, track  # noqa: E402

pytestmark = pytest.mark.arq


async def double(ctx: dict[str, Any], x: int) -> int:
    jobstatus.current()["seen"] = x
    return 2 * x


@options(False)
async def ignored(ctx: dict[str, Any]) -> int:
    return 0


def run_job(settings: Any, job_id: str, *args: Any) -> tuple[Any, dict[str, Any]]:
    """Call a wrapped function as arq's worker would, then its after_job_end hook."""
    functions = settings["functions"] if isinstance(settings, dict) else settings.functions
    hook = settings["after_job_end"] if isinstance(settings, dict) else settings.after_job_end

    async def main() -> Any:
        ctx: dict[str, Any] = {"job_id": job_id, "job_try": 1}
        result = await functions[0].coroutine(ctx, *args)
        await hook(ctx)
        return result, ctx

    return asyncio.run(main())


def test_dict_settings_tracked_twice_record_once_and_keep_the_users_hook() -> None:
    jobstatus.configure(store="memory://")
    calls: list[str] = []

    async def users_hook(ctx: dict[str, Any]) -> None:
        calls.append(ctx["job_id"])

    settings: dict[str, Any] = {"functions": [double], "after_job_end": users_hook}
    assert track(settings) is settings
    track(settings, includes={"status", "exception"})
    assert run_job(settings, "job-1", 21)[0] == 42
    s = jobstatus.get("job-1")
    assert s.is_completed and s["attempts"] == 1 and s["seen"] == 21
    assert calls == ["job-1"]


def test_class_settings_keep_arq_function_options_and_skip_opted_out_functions() -> None:
    jobstatus.configure(store="memory://")

    class WorkerSettings:
        functions = [func(double, name="twice", max_tries=3), ignored]

    track(WorkerSettings)
    twice, plain = WorkerSettings.functions
    assert (twice.name, twice.max_tries) == ("twice", 3)
    assert (plain.name, plain.coroutine.__wrapped__) == ("ignored", ignored)
    run_job(WorkerSettings, "job-2", 1)
    assert jobstatus.get("job-2").is_completed


def test_an_opted_out_function_deletes_only_the_queued_record_of_enqueue_job() -> None:
    jobstatus.configure(store="memory://")
    settings = track({"functions": [ignored]})

    async def run(job_id: str) -> None:
        await settings["functions"][0].coroutine({"job_id": job_id, "job_try": 1})

    jobstatus.Job("queued-1").enqueued({"name": "ignored"})  # what enqueue_job writes
    jobstatus.get("own-1").update(status="working", started_at="2026-01-01T00:00:00+00:00")
    for job_id in ("queued-1", "own-1", "never-1"):
        asyncio.run(run(job_id))
    assert not jobstatus.get("queued-1").exists and not jobstatus.get("never-1").exists
    assert jobstatus.get("own-1").is_working  # not a record jobstatus wrote for it: kept


def test_bad_options_name_the_function() -> None:
    with pytest.raises(ConfigurationError, match="throttle"):
        options(throttle=1)
    with pytest.raises(ConfigurationError, match="nope"):
        track({"functions": []}, nope=1)
