"""A write re-sent after a timeout is applied once: every store checks its origin.

(The get/set/delete cache adapter checks too, but not atomically with its write.)
"""

from __future__ import annotations

import asyncio

import jobstatus
from jobstatus import Batch
from jobstatus._record import MAX_WRITERS, Change
from jobstatus.stores import Store


def tick(sequence: int, writer: str = "writer-a", **fields: object) -> Change:
    """One increment of progress from ``writer``, as a job's writer sends it."""
    return Change(set=dict(fields), incr={"progress": 1}, origin=(writer, sequence))


def test_the_same_write_twice_counts_once(store: Store) -> None:
    store.write("j", tick(1, step="A"))
    store.write("j", tick(1, step="A"))  # re-sent: the reply of the first was lost
    store.write("j", tick(2))
    assert store.read("j") == {"progress": 2, "step": "A"}


def test_an_older_write_arriving_late_is_dropped(store: Store) -> None:
    store.write("j", tick(1))
    store.write("j", tick(2, step="B"))
    store.write("j", tick(1, step="stale"))  # the server ran the first copy late
    assert store.read("j") == {"progress": 2, "step": "B"}


def test_writers_are_counted_apart_and_plain_writes_always_apply(store: Store) -> None:
    for writer in ("a", "b", "c"):
        store.write("j", tick(1, writer))
        store.write("j", tick(1, writer))
    store.write("j", Change(incr={"progress": 10}))  # no origin: applied every time
    store.write("j", Change(incr={"progress": 10}))
    assert store.read("j") == {"progress": 23}


def test_the_bookkeeping_never_shows_in_any_read(store: Store) -> None:
    store.write("j", tick(1, status="working"))
    expected = {"progress": 1, "status": "working"}
    assert store.read("j") == expected
    assert store.read_many(["j", "x"]) == [expected, None]
    assert asyncio.run(store.aread("j")) == expected
    assert jobstatus.get("j").to_dict() == expected
    assert Batch(["j"]).statuses[0].to_dict() == expected
    if hasattr(store, "list_recent"):
        assert [record for _, record in store.list_recent(None, 10, None)] == [expected]


def test_a_record_remembers_the_last_writers_only(store: Store) -> None:
    writers = [f"w{n}" for n in range(MAX_WRITERS + 1)]
    for writer in writers:
        store.write("j", tick(1, writer))
    assert store.read("j") == {"progress": MAX_WRITERS + 1}
    store.write("j", tick(1, writers[-1]))  # the newest is remembered
    assert store.read("j") == {"progress": MAX_WRITERS + 1}
