"""A no-op Dramatiq actor for bench_queues; BENCH_TRACKED=1 adds jobstatus's middleware."""

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

TRACKED = os.environ.get("BENCH_TRACKED") == "1"
BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/5")


def make_broker(tracked: bool) -> RedisBroker:
    broker = RedisBroker(url=BROKER)
    broker.add_middleware(Results(backend=RedisBackend(url=BROKER)))
    if tracked:
        from jobstatus.integrations.dramatiq import StatusMiddleware

        broker.add_middleware(StatusMiddleware(includes={"status", "exception", "serialized_job"}))
    return broker


dramatiq.set_broker(make_broker(TRACKED))


@dramatiq.actor(queue_name=os.environ.get("BENCH_QUEUE", "default"), store_results=True)
def noop() -> None:
    return None
