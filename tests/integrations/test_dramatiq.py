"""Dramatiq's own outcomes, with a real worker on Redis and RabbitMQ brokers; the
lifecycle every queue shares is in contract/."""

from __future__ import annotations

import pytest

from ._support import finished
from .queues import DramatiqWorker, on_workers

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
