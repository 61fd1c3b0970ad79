"""The shared workers of the queue tests (see queues.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .queues import Run, Worker


@pytest.fixture(scope="session")
def queue_worker(request: pytest.FixtureRequest) -> Iterator[Worker]:
    """A real worker of the run a module's ``on_workers`` gives, shared by every test
    of that run (pytest runs them together); its log must end free of jobstatus warnings."""
    run: Run = request.param
    with run.start() as worker:
        yield worker
        worker.assert_quiet()


@pytest.fixture
def worker(queue_worker: Worker) -> Iterator[Worker]:
    """The run's worker, with this process reading and publishing with its store."""
    queue_worker.prepare()
    yield queue_worker
    queue_worker.after_test()
