"""A no-op Celery task for bench_queues and bench_metrics; BENCH_TRACKED=1 tracks it with
jobstatus, and BENCH_METRICS=0 turns its metrics off."""

import os

from celery import Celery

TRACKED = os.environ.get("BENCH_TRACKED") == "1"
BROKER = os.environ.get("BENCH_BROKER", "redis://127.0.0.1:6379/3")

app = Celery("celery_bench", broker=BROKER, backend=BROKER)
app.conf.update(result_expires=60, broker_connection_retry_on_startup=True)

if TRACKED:
    from jobstatus.integrations.celery import track

    track(app, includes={"status", "exception", "serialized_job"})
    if os.environ.get("BENCH_METRICS") == "0":
        import jobstatus.metrics

        jobstatus.metrics.configure(prometheus=False, otel=False)


@app.task(name="bench.noop" if TRACKED else "bench.noop_plain")
def noop() -> None:
    return None
