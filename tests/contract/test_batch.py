"""Batches: the four status rules, counts, progress, missing members."""

from __future__ import annotations

import threading
import time

import pytest

import jobstatus
from jobstatus import Batch, Job
from jobstatus.stores import Store


def _make(job_id: str, state: str, progress: int | None = None, total: int | None = None) -> None:
    job = Job(job_id)
    job.enqueued()
    if state != "queued":
        job.started()
    if progress is not None or total is not None:
        job.status.update(progress=progress or 0, total=total, force=True)
    if state == "completed":
        job.finished()
    elif state == "failed":
        job.finished(RuntimeError("x"))


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        (["queued", "working", "completed", "failed"], "failed"),
        (["queued", "queued"], "queued"),
        (["completed", "completed"], "completed"),
        (["queued", "completed"], "working"),
        (["working", "completed"], "working"),
    ],
)
def test_batch_status_rules(store: Store, states: list[str], expected: str) -> None:
    ids = [f"{expected}-{n}-{state}" for n, state in enumerate(states)]
    for job_id, state in zip(ids, states, strict=False):
        _make(job_id, state)
    batch = Batch(ids + ["missing-one"])
    assert batch.status == expected
    counts = batch.counts
    assert counts["missing"] == 1
    assert sum(counts.values()) == len(ids) + 1
    for state in set(states):
        assert counts[state] == states.count(state)


def test_empty_and_all_missing_batches(store: Store) -> None:
    empty = Batch([])
    assert empty.status is None and empty.is_finished
    assert empty.counts == {
        "queued": 0,
        "working": 0,
        "completed": 0,
        "failed": 0,
        "cancelled": 0,
        "missing": 0,
    }
    assert empty.progress.ratio is None
    ghosts = Batch(["ghost-1", "ghost-2"])
    assert ghosts.status is None and ghosts.counts["missing"] == 2 and ghosts.is_finished


def test_batch_progress_sums_members_with_a_total(store: Store) -> None:
    _make("p1", "working", progress=5, total=10)
    _make("p2", "working", progress=15, total=30)
    _make("p3", "working", progress=7)  # no total: not summed
    progress = Batch(["p1", "p2", "p3"]).progress
    assert (progress.current, progress.total, progress.ratio) == (20, 40, 0.5)
    with pytest.raises(TypeError):
        progress.increment()


def test_batch_accepts_snapshots_and_dedupes(store: Store) -> None:
    _make("d1", "completed")
    batch = Batch([jobstatus.get("d1"), "d1"])
    assert len(batch) == 1 and batch.status == "completed"


def test_batch_refresh_and_wait(store: Store) -> None:
    for n in range(3):
        _make(f"bw{n}", "working")
    batch = Batch([f"bw{n}" for n in range(3)])
    assert batch.status == "working" and not batch.is_finished

    def finish() -> None:
        for n in range(3):
            time.sleep(0.1)
            Job(f"bw{n}").finished()

    thread = threading.Thread(target=finish)
    thread.start()
    assert batch.wait(timeout=20) is batch
    thread.join()
    assert batch.status == "completed" and batch.is_finished
    with pytest.raises(TimeoutError):
        _make("bw-stuck", "working")
        Batch(["bw-stuck"]).wait(timeout=0.2)


def test_a_large_batch_reads_in_a_few_calls(store: Store) -> None:
    ids = [f"big-{n}" for n in range(3000)]
    for job_id in ids[::100]:
        _make(job_id, "completed")
    calls = []
    real = store.read_many

    def counting(job_ids: list[str]) -> list:
        calls.append(len(job_ids))
        return real(job_ids)

    store.read_many = counting  # type: ignore[method-assign]
    try:
        counts = Batch(ids, store=store).counts
    finally:
        del store.read_many
    assert counts["completed"] == 30 and counts["missing"] == 2970
    assert calls == [3000]
