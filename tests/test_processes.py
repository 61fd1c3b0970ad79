"""Several processes on one store: progress seen across processes, no lost writes."""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

import jobstatus

from . import _workers
from .stores import CASES, FakeClock, StoreCase, namespace, require_service

SHARED = [case for case in CASES if case.url(Path("/x"), "x") is not None and case.atomic]
spawn = multiprocessing.get_context("spawn")


@pytest.fixture(params=[case.param() for case in SHARED])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    case: StoreCase = request.param
    if case.service is not None:
        require_service(*case.service)
    ns = namespace()
    store = case.make(tmp_path, FakeClock(), ns)
    store.close()  # creates what the store needs (a table, a file) before the workers start
    found = case.url(tmp_path, ns)
    assert found is not None
    jobstatus.configure(store=found)
    return found


def _run_all(target, argument_lists: list[tuple]) -> None:
    processes = [spawn.Process(target=target, args=args) for args in argument_lists]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0


def test_increments_from_four_processes_add_up(url: str) -> None:
    start_at = time.time() + 1.0
    _run_all(_workers.increment, [(url, "counter", 5000, start_at) for _ in range(4)])
    assert jobstatus.get("counter").progress.current == 20_000


def test_writers_of_different_keys_lose_nothing(url: str) -> None:
    start_at = time.time() + 1.0
    _run_all(_workers.write_keys, [(url, "shared", p, 300, start_at) for p in ("a", "b")])
    record = jobstatus.get("shared").to_dict()
    for prefix in ("a", "b"):
        assert all(record[f"{prefix}{n}"] == n for n in range(300))


def test_a_reader_sees_another_process_make_progress(url: str) -> None:
    process = spawn.Process(target=_workers.slow_job, args=(url, "slow", 5, 0.3))
    process.start()
    try:
        seen = [s.progress.current for s in jobstatus.get("slow").watch(timeout=60)]
    finally:
        process.join(30)
    assert seen[-1] == 5
    assert len({value for value in seen if 0 < value < 5}) >= 2  # it moved, visibly


def test_submit_to_a_process_pool(url: str) -> None:
    with ProcessPoolExecutor(2, mp_context=spawn) as pool:
        ok = jobstatus.submit(pool, _workers.tracked_square, 50)
        bad = jobstatus.submit(pool, _workers.tracked_failure)
    done = jobstatus.Batch([ok, bad]).wait(timeout=60)
    assert done.counts["completed"] == 1 and done.counts["failed"] == 1
    s = jobstatus.get(ok)
    assert s.progress.current == 50 and s["pid_note"] == "ran in a worker"
    assert jobstatus.get(bad)["exception"]["message"] == "failed in a worker process"


def test_submit_to_a_default_process_pool(url: str) -> None:
    """The platform's default start method (fork on Linux up to Python 3.13)."""
    with ProcessPoolExecutor(2) as pool:
        ids = [jobstatus.submit(pool, _workers.tracked_square, n) for n in (3, 4)]
    done = jobstatus.Batch(ids).wait(timeout=60)
    assert done.status == "completed"
    assert [s.progress.current for s in done.statuses] == [3, 4]


BOUND = 60.0  # seconds a worker or a wait may take before the test fails


def _wait_for_working(job_id: str) -> None:
    deadline = time.monotonic() + BOUND
    while not jobstatus.get(job_id).is_working:
        assert time.monotonic() < deadline, f"job {job_id} never started"
        time.sleep(0.02)


def test_a_queued_job_cancelled_in_a_process_pool_never_runs(url: str, tmp_path: Path) -> None:
    release, made = tmp_path / "release", tmp_path / "made"
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        busy = pool.submit(_workers.wait_for_file, str(release), BOUND)  # the only worker
        job_id = jobstatus.submit(pool, _workers.create_file, str(made))
        try:
            assert jobstatus.cancel(job_id, reason="not needed") is True
        finally:
            release.touch()
        busy.result(timeout=BOUND)
    s = jobstatus.get(job_id).wait(timeout=BOUND)
    assert not made.exists()  # its code never ran
    assert s.is_cancelled and not s.is_failed and "started_at" not in s
    assert [entry["status"] for entry in s.history] == ["queued", "cancel_requested", "cancelled"]


def test_a_running_job_cancelled_in_a_process_pool_ends_cancelled(url: str) -> None:
    with ProcessPoolExecutor(1, mp_context=spawn) as pool:
        job_id = jobstatus.submit(pool, _workers.loop_until_cancelled, BOUND)
        _wait_for_working(job_id)
        assert jobstatus.cancel(job_id, reason="stop") is True
        s = jobstatus.get(job_id).wait(timeout=BOUND)
    assert s.is_cancelled and not s.is_failed
    assert s["cancel"]["reason"] == "stop"
    assert s.progress.current > 0
    assert [entry["status"] for entry in s.history][-2:] == ["cancel_requested", "cancelled"]
