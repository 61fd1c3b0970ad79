"""The actors the Dramatiq integration tests run in a real ``dramatiq`` worker."""

from __future__ import annotations

import os
import time
import warnings
from urllib.parse import urlsplit, urlunsplit

import _gate
import _worker_options
import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import GroupCallbacks
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

with warnings.catch_warnings():
    # Dramatiq 1.16 warns at this import when pylibmc (its memcached backend) is absent.
    warnings.simplefilter("ignore", ImportWarning)
    from dramatiq.rate_limits.backends import RedisBackend as RateLimiterBackend

import jobstatus
from jobstatus.integrations.dramatiq import StatusMiddleware

QUEUE = os.environ.get("JOBSTATUS_TEST_DRAMATIQ_QUEUE", "jobstatus-test")
FULL = {"status", "exception", "serialized_job"}
DECLARED_GROUP = "jobstatus-test-dramatiq-declared-group"  # made by the test first
# Results (for actors with store_results) in Redis database 5, whatever the broker.
RESULTS_URL = urlunsplit(
    urlsplit(os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))._replace(
        path="/5"
    )
)


# "before" or "after": a worker (and its publisher) with dramatiq-abort's Abortable
# middleware, placed before or after jobstatus's.
ABORT_OPTION = "JOBSTATUS_TEST_DRAMATIQ_ABORT"


def make_broker(url: str, *, abortable: str = "") -> dramatiq.Broker:
    """A Redis or RabbitMQ broker with jobstatus's middleware and a result backend;
    with ``abortable`` ("before" or "after" jobstatus's), dramatiq-abort's middleware
    too, its events in Redis database 5."""
    broker: dramatiq.Broker = (
        RabbitmqBroker(url=url) if url.startswith("amqp") else RedisBroker(url=url)
    )
    broker.add_middleware(Results(backend=RedisBackend(url=RESULTS_URL)))
    broker.add_middleware(GroupCallbacks(RateLimiterBackend(url=RESULTS_URL)))
    broker.add_middleware(StatusMiddleware(includes=FULL))
    if abortable:
        from dramatiq_abort import Abortable
        from dramatiq_abort.backends import RedisBackend as AbortBackend

        middleware = Abortable(backend=AbortBackend.from_url(RESULTS_URL))
        place = {"before": StatusMiddleware} if abortable == "before" else {}
        broker.add_middleware(middleware, **place)
    return broker


broker = make_broker(
    os.environ.get("JOBSTATUS_TEST_DRAMATIQ_BROKER", "redis://127.0.0.1:6379/5"),
    abortable=os.environ.get(ABORT_OPTION, ""),
)
dramatiq.set_broker(broker)
_worker_options.configure_from_env()  # the killed-worker tests beat fast


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def add(x: int, y: int) -> int:
    return x + y


@dramatiq.actor(queue_name=QUEUE, max_retries=0, store_results=True)
def fail(message: str) -> None:
    raise ValueError(message)


@dramatiq.actor(queue_name=QUEUE, max_retries=0, jobstatus={"throttle_interval": 3600})
def gated(gate: str, steps: int) -> None:
    """Write progress and a key, wait at the gate, then make throttled (held) progress."""
    status = jobstatus.current()
    status.progress.total = steps
    status.progress.current = 1
    status["step"] = "waiting"
    _gate.wait(gate)  # ticks: a cancel request raises Cancelled here
    for _ in range(steps - 1):
        status.progress.increment()
    status.update(step="done")  # throttled: held until the end


@dramatiq.actor(queue_name=QUEUE, max_retries=3, min_backoff=2000, max_backoff=2000)
def retry_once(marker: str, gate: str) -> None:
    """The first attempt waits at the gate and fails (retried one to two seconds
    later), the second succeeds."""
    if _gate.incr(marker) == 1:
        _gate.wait(gate)
        raise ConnectionError("first try")


@dramatiq.actor(queue_name=QUEUE, max_retries=1, min_backoff=10, max_backoff=20)
def always_fail() -> None:
    raise ValueError("always")


@dramatiq.actor(queue_name=QUEUE, max_retries=5, throws=(KeyError,))
def throws() -> None:
    raise KeyError("not retried")


@dramatiq.actor(queue_name=QUEUE, max_retries=0, time_limit=1000)
def too_slow() -> None:
    for _ in range(300):  # short sleeps: the time limit interrupts between them
        time.sleep(0.1)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def swallow() -> None:
    try:
        raise KeyError("missing row")
    except KeyError as exc:
        jobstatus.current().catch_exception(exc)


@dramatiq.actor(queue_name=QUEUE, max_retries=0, jobstatus=False)
def untracked(gate: str) -> None:
    _gate.open_gate(gate)


@dramatiq.actor(queue_name=QUEUE, max_retries=0, jobstatus={"includes": {"status"}})
def plain_record() -> None:
    pass


@dramatiq.actor(queue_name=QUEUE, max_retries=0, jobstatus={"parent": DECLARED_GROUP})
def in_declared_group() -> None:
    pass


@dramatiq.actor(queue_name=QUEUE, max_retries=3, min_backoff=500, max_backoff=500)
def gated_with_retries(gate: str, marker: str) -> None:
    """Count its runs, then wait at the gate ticking progress (a cancel stops it)."""
    _gate.incr(marker)
    _gate.wait(gate)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def opens(gate: str) -> None:
    """A side effect a test can see: the gate opens (so a cancelled job must not run it)."""
    _gate.open_gate(gate)


@dramatiq.actor(queue_name=QUEUE, max_retries=3, min_backoff=500, max_backoff=500)
def sleeps(marker: str, seconds: float) -> None:
    """Count its runs, then sleep without a progress or status call: only an abort
    of the queue's own can stop it before ``seconds``."""
    _gate.incr(marker)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def group_done() -> None:
    """A Dramatiq group's completion callback."""
