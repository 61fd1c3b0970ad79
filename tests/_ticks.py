"""Progress ticks on a top group, for the stores that move it in one statement."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext

import jobstatus
from jobstatus._record import Change
from jobstatus.stores import MemoryStore, Store

TICKS = 200
TRACED = 100  # the last ones


def play_ticks(
    store: Store, traced: Callable[[], AbstractContextManager[object]] = nullcontext
) -> dict[str, object]:
    """Five working children of one top group, then 200 seeded ticks (a child's total
    and progress, its status the same), the last 100 inside ``traced()``; the group's
    record at the end, less the two stamps a store takes from its own clock."""
    group = jobstatus.group(name="ticks", group_id="ticks", store=store)
    rng = random.Random(20261202)
    children = [f"child-{n}" for n in range(5)]
    start = "2026-12-02T00:00:00+00:00"
    for child in children:
        store.write(child, Change(set={"parent": group.job_id, "status": "working",
                                       "updated_at": start}))  # fmt: skip
    for step in _steps(traced):
        total = rng.choice([3, 7, 1000])
        fields: dict[str, object] = {"total": total, "progress": rng.random() * total}
        fields["updated_at"] = f"2026-12-02T00:{step // 60:02d}:{step % 60:02d}+00:00"
        store.write(rng.choice(children), Change(set=fields))
    record = store.read(group.job_id)
    assert record is not None and record.pop("queued_at")
    assert record["history"][0].pop("at")
    return record


def _steps(traced: Callable[[], AbstractContextManager[object]]) -> Iterator[int]:
    yield from range(TICKS - TRACED)
    with traced():
        yield from range(TICKS - TRACED, TICKS)


def as_memory_leaves_it() -> dict[str, object]:
    """The same ticks through the memory store's Python merge."""
    return play_ticks(MemoryStore())
