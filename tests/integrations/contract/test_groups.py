"""Groups on every queue (SPEC 10), from a real worker of each (the QUEUES of
../queues.py): ``parent=`` given at publish time makes a job a group's child on every
queue, and the queue's own grouping is a group under the queue's id where it has one."""

from __future__ import annotations

import pytest

import jobstatus

from .._support import finished, wait_for
from ..queues import QUEUE_GROUPS, Worker, on_workers

pytestmark = pytest.mark.timeout(180)

COUNTS = ("queued", "working", "completed", "failed", "cancelled")


def counts(**given: int) -> dict[str, int]:
    return {state: given.get(state, 0) for state in COUNTS}


@on_workers()
def test_parent_given_at_publish_makes_children_that_roll_up(worker: Worker) -> None:
    g = jobstatus.group(name="sums")
    jobs = [worker.send_child(g.job_id, "add", n, n) for n in range(3)]
    failing = worker.send_child(g.job_id, "fail", "one bad row")
    for job in jobs:
        s = finished(job)
        assert s.is_completed and s["parent"] == g.job_id, s.to_dict()
    assert finished(failing)["parent"] == g.job_id
    done = wait_for(g.job_id, lambda s: s.is_finished)
    assert done["children"] == counts(completed=3, failed=1)
    assert done.is_failed  # the Batch rules: one failed child fails the group
    assert done.progress.current == 4 and done.progress.total == 4
    ids = {jobstatus.get(job).job_id for job in [*jobs, failing]}
    assert {s.job_id for s in done.children.statuses} == ids


@on_workers()
def test_a_child_keeps_its_parent_from_queued_to_working(worker: Worker) -> None:
    g = jobstatus.group(name="one")
    job = worker.send_child(g.job_id, "gated", worker.gate(), 2)
    queued_or_working = jobstatus.get(job)
    assert queued_or_working["parent"] == g.job_id
    s = wait_for(job, lambda s: s.is_working, log=worker.log)
    assert s["parent"] == g.job_id
    assert jobstatus.get(g.job_id)["children"] == counts(working=1)


@on_workers()
def test_a_parent_that_is_no_group_is_refused_at_publish(worker: Worker) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        worker.send_child("no-such-group", "add", 1, 1)
    plain = finished(worker.send("add", 1, 1))
    with pytest.raises(ValueError, match="not a group"):
        worker.send_child(plain.job_id, "add", 1, 1)


@on_workers(supporting=QUEUE_GROUPS)
def test_the_queues_own_group_is_a_group_under_its_id(worker: Worker) -> None:
    group_id, jobs = worker.send_group("add", [(n, n) for n in range(4)])
    for job in jobs:
        assert finished(job)["parent"] == group_id
    g = wait_for(group_id, lambda s: s.is_finished)
    assert g.is_completed and g["children"] == counts(completed=4), g.to_dict()
    assert g.progress.current == 4 and g.progress.total == 4
    assert g.name is not None
