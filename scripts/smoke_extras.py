"""Does what `pip install 'jobstatus[all]'` (or `[arq]`) installed work?

    python scripts/smoke_extras.py all    # in a venv with jobstatus[all]
    python scripts/smoke_extras.py arq    # in a venv with jobstatus[arq]

Connects Celery's Redis and RabbitMQ transports, builds Dramatiq's Redis and
RabbitMQ brokers and taskiq-redis's broker, imports RQ, Huey, Django, Starlette and
Flask with jobstatus's adapters, and writes and reads a record in the Redis store
with whatever redis-py was resolved; for arq, pings Redis through arq's pool and
does the same store round trip. Exits non-zero at the first failure. Uses
JOBSTATUS_TEST_REDIS_URL and JOBSTATUS_TEST_RABBITMQ_URL (the local defaults).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import sys
import uuid

REDIS_URL = os.environ.get("JOBSTATUS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get("JOBSTATUS_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def versions(*names: str) -> None:
    print("resolved:", ", ".join(f"{n} {importlib.metadata.version(n)}" for n in names))


def redis_store_round_trip() -> None:
    """The Redis store writes a record and reads it back, with the resolved redis-py."""
    import jobstatus

    separator = "&" if "?" in REDIS_URL else "?"
    store = jobstatus.store_from_url(f"{REDIS_URL}{separator}prefix=smoke-{uuid.uuid4().hex}:")
    jobstatus.configure(store=store)
    status = jobstatus.get("smoke")
    status.update({"step": "written"}, force=True)
    read = jobstatus.get("smoke")
    assert read.exists and read["step"] == "written", read.to_dict()
    read.delete()
    store.close()
    print("ok: the Redis store writes and reads")


def celery() -> None:
    from celery import Celery

    import jobstatus.integrations.celery as integration

    for url in (REDIS_URL, RABBITMQ_URL):
        app = Celery("smoke", broker=url)
        integration.track(app)
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1)
        print(f"ok: Celery's {url.split(':')[0]} transport connects")


def dramatiq() -> None:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker
    from dramatiq.brokers.redis import RedisBroker

    from jobstatus.integrations.dramatiq import StatusMiddleware

    redis_broker = RedisBroker(url=REDIS_URL)
    redis_broker.add_middleware(StatusMiddleware())
    redis_broker.client.ping()
    redis_broker.close()
    # Celery's "//" (vhost "/") is "/%2F" to pika.
    pika_url = RABBITMQ_URL[:-2] + "/%2F" if RABBITMQ_URL.endswith("//") else RABBITMQ_URL
    rabbit = RabbitmqBroker(url=pika_url)
    rabbit.add_middleware(StatusMiddleware())
    rabbit.channel  # noqa: B018 - opens the connection
    rabbit.close()
    print("ok: Dramatiq's Redis and RabbitMQ brokers connect")


def taskiq() -> None:
    from taskiq_redis import ListQueueBroker, RedisAsyncResultBackend

    from jobstatus.integrations.taskiq import StatusMiddleware

    async def main() -> None:
        broker = ListQueueBroker(REDIS_URL).with_result_backend(RedisAsyncResultBackend(REDIS_URL))
        broker.with_middlewares(StatusMiddleware())
        await broker.startup()
        await broker.shutdown()

    asyncio.run(main())
    print("ok: taskiq-redis's broker starts and stops")


def the_rest() -> None:
    import django
    import flask  # noqa: F401
    import huey  # noqa: F401
    import rq  # noqa: F401
    import starlette  # noqa: F401

    import jobstatus.integrations.huey
    import jobstatus.integrations.rq
    import jobstatus.web
    import jobstatus.web.flask

    jobstatus.web.create_app(store="memory://")
    jobstatus.web.flask.blueprint(store="memory://")
    assert django.VERSION >= (5, 2)
    print("ok: RQ, Huey, Django, Starlette and Flask import with their adapters")


def arq() -> None:
    from arq import create_pool
    from arq.connections import RedisSettings

    import jobstatus.integrations.arq  # noqa: F401

    async def main() -> None:
        pool = await create_pool(RedisSettings.from_dsn(REDIS_URL))
        assert await pool.ping()
        await pool.aclose()

    asyncio.run(main())
    print("ok: arq's pool reaches Redis")


def main(target: str) -> int:
    if target == "all":
        versions("celery", "kombu", "redis", "dramatiq", "taskiq", "taskiq-redis", "rq", "huey")
        celery()
        dramatiq()
        taskiq()
        the_rest()
    elif target == "arq":
        versions("arq", "redis")
        arq()
    else:
        print(__doc__)
        return 2
    redis_store_round_trip()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ""))
