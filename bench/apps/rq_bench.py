"""A no-op RQ job for bench_queues (tracked only when a StatusWorker runs it)."""

from jobstatus.integrations.rq import status_options


@status_options(includes={"status", "exception", "serialized_job"})
def noop() -> None:
    return None
