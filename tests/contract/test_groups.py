"""Groups (SPEC 10), on every store: one id for a fan-out, progress that rolls up."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

import jobstatus
from jobstatus import Job
from jobstatus.stores import Store

from ..stores import StoreCase
from .test_cancel import BOUND, busy_pool

ZERO = {"queued": 0, "working": 0, "completed": 0, "failed": 0, "cancelled": 0}


@pytest.fixture(autouse=True)
def _whole_change(case: StoreCase) -> None:
    if not case.guards:
        pytest.skip(f"{case.name} does not apply guards, history and groups yet")


def _counts(**given: int) -> dict[str, int]:
    return {**ZERO, **given}


def test_a_new_group_is_queued_with_its_name_and_no_children(store: Store) -> None:
    g = jobstatus.group(name="import")
    s = jobstatus.get(g.job_id)
    assert s.status == "queued" and s.name == "import"
    assert s["children"] == ZERO
    assert (s.progress.current, s.progress.total, s.progress.ratio) == (0, 0, None)


def test_a_group_id_can_be_chosen_and_group_is_idempotent(store: Store) -> None:
    g = jobstatus.group(name="import", group_id="g-chosen")
    assert g.job_id == "g-chosen"
    Job("g-chosen-child", parent="g-chosen").enqueued()
    again = jobstatus.group(name="import", group_id="g-chosen")
    assert again["children"] == _counts(queued=1)  # not reset


def test_children_move_their_groups_counts_and_progress(store: Store) -> None:
    g = jobstatus.group(name="fan-out")

    def work(n: int) -> int:
        status = jobstatus.current()
        status.progress.total = 4
        status.progress.current = 2
        return n

    with busy_pool() as (pool, release):
        ids = [jobstatus.submit(pool, work, n, parent=g) for n in range(3)]
        s = jobstatus.get(g.job_id)
        assert s["children"] == _counts(queued=3)
        assert s.status == "queued" and s.progress.total == 3 and s.progress.current == 0
        release.set()
    for job_id in ids:
        assert jobstatus.get(job_id).wait(timeout=BOUND)["parent"] == g.job_id
    s = jobstatus.get(g.job_id)
    assert s["children"] == _counts(completed=3)
    assert s.status == "completed" and s.is_finished
    assert (s.progress.current, s.progress.total, s.progress.ratio) == (3, 3, 1.0)


def test_a_working_childs_ratio_counts_toward_the_group(store: Store) -> None:
    g = jobstatus.group(name="half")
    child = Job("half-child", parent=g)
    child.enqueued()
    child.started()
    child.status.progress.total = 100
    child.status.progress.current = 50
    s = jobstatus.get(g.job_id)
    assert s["children"] == _counts(working=1)
    assert s.status == "working"
    assert s.progress.current == pytest.approx(0.5) and s.progress.total == 1
    child.finished()
    s = jobstatus.get(g.job_id)
    assert s.status == "completed" and s.progress.current == 1


def test_a_failed_child_fails_the_group_and_cancelled_children_count(store: Store) -> None:
    g = jobstatus.group(name="mixed")
    outcomes = {"m-ok": None, "m-bad": ValueError("x"), "m-stop": "cancel"}
    for job_id, outcome in outcomes.items():
        job = Job(job_id, parent=g.job_id)
        job.started()
        if outcome == "cancel":
            job.cancelled()
        else:
            job.finished(outcome)  # type: ignore[arg-type]
    s = jobstatus.get(g.job_id)
    assert s["children"] == _counts(completed=1, failed=1, cancelled=1)
    assert s.status == "failed" and s.progress.current == 3


def test_a_group_whose_children_all_ended_without_failure_but_some_cancelled(
    store: Store,
) -> None:
    g = jobstatus.group(name="stopped")
    for job_id, cancel in (("s-ok", False), ("s-stop", True)):
        job = Job(job_id, parent=g)
        job.started()
        job.cancelled() if cancel else job.finished()
    assert jobstatus.get(g.job_id).status == "cancelled"


def test_groups_nest_and_every_level_rolls_up(store: Store) -> None:
    top = jobstatus.group(name="top")
    middle = jobstatus.group(name="middle", parent=top)
    assert jobstatus.get(middle.job_id)["parent"] == top.job_id
    assert jobstatus.get(top.job_id)["children"] == _counts(queued=1)
    leaf = Job("leaf", parent=middle)
    leaf.enqueued()
    leaf.started()
    assert jobstatus.get(middle.job_id).status == "working"
    assert jobstatus.get(top.job_id)["children"] == _counts(working=1)
    leaf.finished()
    assert jobstatus.get(middle.job_id).status == "completed"
    top_s = jobstatus.get(top.job_id)
    assert top_s["children"] == _counts(completed=1)
    assert top_s.status == "completed" and top_s.progress.ratio == 1.0


def test_a_retried_child_moves_back_to_queued_in_its_group(store: Store) -> None:
    g = jobstatus.group(name="retries")
    child = Job("r-child", parent=g)
    child.enqueued()
    child.started()
    child.retrying(ValueError("flaky"))
    assert jobstatus.get(g.job_id)["children"] == _counts(queued=1)
    child.started()
    child.finished()
    assert jobstatus.get(g.job_id)["children"] == _counts(completed=1)


def test_track_and_asubmit_take_a_parent(store: Store) -> None:
    g = jobstatus.group(name="ways")

    @jobstatus.track(parent=g)
    def tracked() -> str:
        return jobstatus.current().job_id

    async def coroutine() -> str:
        return jobstatus.current().job_id

    async def main() -> str:
        job_id = await jobstatus.asubmit(coroutine, parent=g.job_id)
        return (await (await jobstatus.aget(job_id)).until_finished(timeout=BOUND)).job_id

    first = tracked()
    second = asyncio.run(main())
    assert jobstatus.get(first)["parent"] == g.job_id
    assert jobstatus.get(second)["parent"] == g.job_id
    assert jobstatus.get(g.job_id)["children"] == _counts(completed=2)


def test_children_of_a_group_are_a_batch(store: Store, case: StoreCase) -> None:
    g = jobstatus.group(name="listed")
    for n in range(3):
        Job(f"listed-{n}", parent=g).enqueued()
    Job("not-a-child").enqueued()
    if not case.lists:
        with pytest.raises(jobstatus.NotSupportedError):
            jobstatus.get(g.job_id).children  # noqa: B018
        return
    children = jobstatus.get(g.job_id).children
    assert isinstance(children, jobstatus.Batch)
    assert sorted(children.job_ids) == ["listed-0", "listed-1", "listed-2"]
    assert children.counts["queued"] == 3


def test_a_parent_that_does_not_exist_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="no-such-group"):
        Job("orphan", parent="no-such-group")
    assert jobstatus.get("orphan").exists is False


def test_a_parent_that_is_not_a_group_is_refused(store: Store) -> None:
    Job("plain").enqueued()
    with pytest.raises(ValueError, match="not a group"):
        Job("child-of-plain", parent="plain")


def test_a_job_cannot_be_its_own_parent(store: Store) -> None:
    with pytest.raises(ValueError, match="own"):
        Job("self", parent="self")
    with pytest.raises(ValueError, match="own"):
        jobstatus.group(name="loop", group_id="loop", parent="loop")


def test_a_job_cannot_be_its_own_ancestor(store: Store) -> None:
    top = jobstatus.group(name="a", group_id="cycle-a")
    jobstatus.group(name="b", group_id="cycle-b", parent=top)
    with pytest.raises(ValueError, match="ancestor"):
        Job("cycle-a", parent="cycle-b")


def test_nesting_deeper_than_the_bound_is_refused(store: Store) -> None:
    from jobstatus._rollup import MAX_DEPTH

    parent = jobstatus.group(name="level-0")
    for level in range(1, MAX_DEPTH + 1):  # the last has MAX_DEPTH ancestors: allowed
        parent = jobstatus.group(name=f"level-{level}", parent=parent)
    with pytest.raises(ValueError, match=str(MAX_DEPTH)):
        Job("too-deep", parent=parent)
    assert jobstatus.get("too-deep").exists is False


def test_children_from_many_threads_add_up_exactly(store: Store, case: StoreCase) -> None:
    if not case.atomic:
        pytest.skip("a get/set/delete cache cannot merge atomically")
    g = jobstatus.group(name="threads")

    def child(n: int) -> None:
        job = Job(f"t-{n}", parent=g.job_id)
        job.enqueued()
        job.started()
        job.status.update(total=2, progress=1, force=True)
        job.finished(ValueError("odd") if n % 2 else None)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(child, range(200)))
    s = jobstatus.get(g.job_id)
    assert s["children"] == _counts(completed=100, failed=100)
    assert s.progress.current == 200 and s.progress.total == 200
    assert s.status == "failed"


def test_a_group_can_be_cancelled_with_its_children(store: Store, case: StoreCase) -> None:
    g = jobstatus.group(name="to-cancel")
    for n in range(3):
        Job(f"gc-{n}", parent=g).enqueued()
    assert jobstatus.cancel(g.job_id, reason="stop all") is True
    if case.lists:
        assert all(s.cancel_requested for s in jobstatus.get(g.job_id).children.statuses)
    assert jobstatus.get(g.job_id).cancel_requested
