"""Groups and cancel delivery on the network stores (issues 15-17).

    python -m bench.bench_groups        # every store's rows
    BENCH_GROUP_SIZES=100,10000 python -m bench.bench_groups   # a quicker run

Rows, per store (one function each, so stores' rows merge apart):

- reading a group of 100 / 10,000 / 100,000 children: one read of the group's
  record (its counts are rolled up by every child's write) against a ``Batch``
  over the same children (a ``read_many`` of them all, as before groups);
- a child's write that moves its state, with a parent (the write also rolls the
  group up) against the same write of a job without one (goal: at most 1.5x);
- cancel delivery: from ``jobstatus.cancel()`` in this process to ``Cancelled``
  raised in a job running in another process, p50 and p99 (goal: p99 < 50 ms).
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import jobstatus
from jobstatus import Job
from jobstatus._record import Change, utc_now_iso

from ._harness import Row, alternate, percentile, report
from ._workers import unique

POSTGRES_URL = os.environ.get(
    "JOBSTATUS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
SIZES = [int(size) for size in os.environ.get("BENCH_GROUP_SIZES", "100,10000,100000").split(",")]
CANCELS = int(os.environ.get("BENCH_GROUP_CANCELS", "200"))
WRITES = 2_000  # writes per side and round of the parent-or-not comparison


def children(group_id: str, count: int) -> Iterator[tuple[str, Change]]:
    """Finished children of ``group_id`` (every tenth failed), ids ``<group>-0000000`` on."""
    for n in range(count):
        fields = {
            "status": "failed" if n % 10 == 0 else "completed",
            "parent": group_id,
            "updated_at": utc_now_iso(),
        }
        yield f"{group_id}-{n:07d}", Change(set=fields, events=((fields["status"], utc_now_iso()),))


def group_read_rows(
    name: str, store: Any, load: Callable[[Any, Iterator[tuple[str, Change]]], object]
) -> list[Row]:
    """One read of a group against a Batch of its children, at each of SIZES."""
    rows = []
    jobstatus.configure(store=store)
    for size in SIZES:
        group = jobstatus.group(name=f"bench-{size}")
        load(store, children(group.job_id, size))
        ids = [f"{group.job_id}-{n:07d}" for n in range(size)]
        assert jobstatus.get(group.job_id)["children"]["completed"] == size - (size + 9) // 10

        def one_read(n: int, group_id: str = group.job_id) -> None:
            for _ in range(n):
                jobstatus.get(group_id).progress.ratio  # noqa: B018

        def batch(n: int, job_ids: list[str] = ids) -> None:
            for _ in range(n):
                jobstatus.Batch(job_ids).counts  # noqa: B018

        n = max(1, 2_000 // size)
        times = alternate({"group": one_read, "batch": batch}, n, rounds=5)
        rows.append(
            Row(
                f"{name}: a group of {size:,} children, one read", times["group"] * 1e3,
                f"Batch of its {size:,} children", times["batch"] * 1e3, "ms", "one read",
            )
        )  # fmt: skip
    return rows


def parent_write_row(name: str, store: Any) -> Row:
    """A write that moves a working child's ratio, with a group to roll up, or without."""
    jobstatus.configure(store=store)
    group = jobstatus.group(name="bench-writes")
    started = {"status": "working", "total": 10**9, "updated_at": utc_now_iso()}
    store.write("with-parent", Change(set={**started, "parent": group.job_id}))
    store.write("without-parent", Change(set=started))
    step = [0]

    def writes(job_id: str) -> Callable[[int], None]:
        def run(n: int) -> None:
            for _ in range(n):
                step[0] += 1
                store.write(job_id, Change(set={"progress": step[0], "updated_at": utc_now_iso()}))

        return run

    times = alternate({"with": writes("with-parent"), "without": writes("without-parent")}, WRITES)
    assert jobstatus.get(group.job_id)["children"]["working"] == 1
    return Row(
        f"{name}: a child's write that moves its group", times["with"] * 1e6,
        "the same write without a parent", times["without"] * 1e6, "us/op", "ratio >= 0.67 (1.5x)",
    )  # fmt: skip


def _cancel_target(url: str, ready: Any, raised: Any, count: int) -> None:
    """Run ``count`` jobs one after the other; each waits (writing nothing) for its cancel."""
    jobstatus.configure(store=url, heartbeat_interval=0)
    for n in range(count):

        def work(n: int = n) -> None:
            status = jobstatus.current()
            ready.put(n)
            deadline = time.monotonic() + 30
            while not status.cancel_requested and time.monotonic() < deadline:
                time.sleep(0.0002)
            status.progress.increment()  # raises Cancelled

        try:
            Job(f"cancel-{n}").run(work, (), {})
        except jobstatus.Cancelled:
            raised.put(time.time())
        else:
            raised.put(None)


def cancel_latency_row(name: str, url: str) -> Row:
    """p50 and p99 from jobstatus.cancel() here to Cancelled raised in another process."""
    jobstatus.configure(store=url)
    spawn = multiprocessing.get_context("spawn")
    ready, raised = spawn.Queue(), spawn.Queue()
    target = spawn.Process(target=_cancel_target, args=(url, ready, raised, CANCELS))
    target.start()
    latencies = []
    try:
        for n in range(CANCELS):
            assert ready.get(timeout=60) == n
            time.sleep(0.002)  # the job is in its loop
            start = time.time()
            jobstatus.cancel(f"cancel-{n}")
            seen = raised.get(timeout=60)
            assert seen is not None, "the job was never cancelled"
            latencies.append((seen - start) * 1e3)
    finally:
        target.join(60)
    return Row(
        f"{name}: cancel() to Cancelled in another process, p99", percentile(latencies, 99),
        "p50", percentile(latencies, 50), "ms", "p99 < 50 ms",
    )  # fmt: skip


# -- PostgreSQL -------------------------------------------------------------------------


def postgres_rows() -> list[Row]:
    """PostgreSQL: group reads, the write with a parent, cancel delivery."""
    from jobstatus.stores.postgres import PostgresStore

    from ._bulk import load_postgres

    table = unique("groupbench").replace("-", "_")
    store = PostgresStore(POSTGRES_URL, table=table, timeout=60)  # a Batch of 100,000
    try:
        rows = group_read_rows("PostgreSQL", store, load_postgres)
        rows.append(parent_write_row("PostgreSQL", store))
        rows.append(cancel_latency_row("PostgreSQL", f"{POSTGRES_URL}?table={table}"))
    finally:
        jobstatus.configure(store=None)
        store.drop()
        store.close()
    return rows


def main() -> str:
    rows = postgres_rows()
    return report("Groups and cancel delivery (issues 15-17)", rows, "groups")


if __name__ == "__main__":
    main()
