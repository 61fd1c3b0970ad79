"""Dramatiq's own outcomes, with a real worker on Redis and RabbitMQ brokers; the
lifecycle every queue shares is in contract/."""

from __future__ import annotations

import time

import pytest

import jobstatus

from ._support import finished, wait_for
from .queues import DramatiqWorker, _gate, on_workers

pytestmark = [on_workers("dramatiq"), pytest.mark.timeout(180)]


def test_exception_in_throws_fails_without_retry(worker: DramatiqWorker) -> None:
    s = finished(worker.send("throws"))
    assert s.is_failed and s["attempts"] == 1
    assert s["exception"]["class"] == "KeyError"


def test_time_limit_is_failed(worker: DramatiqWorker) -> None:
    s = finished(worker.send("too_slow"))
    assert s.is_failed
    assert s["exception"]["class"] == "dramatiq.middleware.time_limit.TimeLimitExceeded"


def test_message_skipped_by_the_age_limit_is_failed(worker: DramatiqWorker) -> None:
    s = finished(worker.send_message("add", 1, 1, max_age=1))
    assert s.is_failed
    assert s["exception"]["class"] == "jobstatus.integrations.dramatiq.MessageSkipped"


def test_a_cancelled_message_with_retries_left_is_not_retried(worker: DramatiqWorker) -> None:
    marker = worker.gate()
    message = worker.send("gated_with_retries", worker.gate(), marker)
    wait_for(message, lambda s: s.is_working)
    assert jobstatus.cancel(message, reason="enough")
    s = finished(message)
    assert s.is_cancelled and s["attempts"] == 1 and "exception" not in s
    time.sleep(2)  # past its retry backoff: a retry would have started by now
    assert _gate.incr(marker) == 2  # the actor ran once
    assert jobstatus.get(message)["attempts"] == 1


def test_a_message_joins_the_group_in_its_options(worker: DramatiqWorker) -> None:
    from jobstatus.integrations.dramatiq import PARENT_OPTION

    g = jobstatus.group(name="dramatiq batch")
    messages = [worker.send_message("add", n, n, **{PARENT_OPTION: g}) for n in range(3)]
    for message in messages:
        assert finished(message)["parent"] == g.job_id
    group = wait_for(g, lambda s: s.is_finished)
    assert group.is_completed and group["children"]["completed"] == 3


def test_an_actor_declared_with_a_parent_joins_that_group(worker: DramatiqWorker) -> None:
    import dramatiq_tasks

    g = jobstatus.group(name="declared", group_id=dramatiq_tasks.DECLARED_GROUP)
    message = worker.send("in_declared_group")
    assert finished(message)["parent"] == g.job_id
    assert wait_for(g, lambda s: s.is_finished)["children"]["completed"] == 1


def test_a_parent_that_is_not_a_group_is_refused_at_publish(worker: DramatiqWorker) -> None:
    from jobstatus.integrations.dramatiq import PARENT_OPTION

    with pytest.raises(ValueError, match="does not exist"):
        worker.send_message("add", 1, 1, **{PARENT_OPTION: "no-such-group"})
