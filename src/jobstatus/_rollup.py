"""Groups: how a child's change of state moves its group's record. Pure: no I/O.

A group's record keeps, in its own keys, what its children add up to::

    children  {"queued": n, "working": n, "completed": n, "failed": n, "cancelled": n}
    total     how many children it has
    progress  the children's ratios summed; a finished child, whatever its ending, counts 1
    status    the Batch rules over ``children`` (queued while it has none)

A child names its group in ``parent``. When a write changes a child's
:class:`State` (its status, or how far along it is), the store applies
:func:`roll_up` to the group's record in the same atomic step, and the group's own
change of state moves *its* parent, and so on up to :data:`MAX_DEPTH` levels.
Reading a group is therefore one read, whatever its size.

The Python-merging stores call these functions; the Redis script and the
PostgreSQL function do the same arithmetic (the contract suite holds them to it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, NamedTuple, TypeGuard

from ._record import (
    FINISHED_STATES,
    STATES,
    UNFINISHED_STATES,
    Change,
    Record,
    Written,
    append_history,
    apply_write,
    pending_cancel,
    utc_now_iso,
)

#: Ancestors a job may have: its group, that group's group, ... (each level a write).
MAX_DEPTH: Final = 8
CHILDREN_KEY: Final = "children"


class State(NamedTuple):
    """What a child adds to its group: its status and its ratio in [0, 1]."""

    # A tuple, not a frozen dataclass: a parent's write builds two, and a frozen
    # dataclass's __init__ costs five times a tuple's.

    status: str
    ratio: float


def is_number(value: object) -> TypeGuard[float]:
    """An int or float that is not a bool."""
    kind = type(value)
    if kind is int or kind is float:  # what JSON gives: the check every write makes
        return True
    return isinstance(value, (int, float)) and kind is not bool


def state_of(record: Mapping[str, Any] | None) -> State | None:
    """The state a record adds to its group; None when it has no valid status.

    A finished record counts 1 whatever its ending; an unfinished one counts
    ``progress / total`` clamped to [0, 1], or 0 while its total is unknown.
    """
    if not record:
        return None
    status = record.get("status")
    if status in FINISHED_STATES:
        return State(status, 1.0)
    if status not in UNFINISHED_STATES:
        return None
    progress, total = record.get("progress"), record.get("total")
    if is_number(total) and total > 0 and is_number(progress):
        ratio = progress / total
        # min(max(ratio, 0.0), 1.0), NaN and -0.0 alike, without two builtin calls:
        # every write of a child computes this.
        return State(status, 0.0 if ratio < 0.0 else 1.0 if ratio > 1.0 else ratio)
    return State(status, 0.0)


def is_group(record: Mapping[str, Any] | None) -> bool:
    """Whether a record is a group's (it keeps its children's counts)."""
    return bool(record) and isinstance(record.get(CHILDREN_KEY), dict)  # type: ignore[union-attr]


def empty_counts() -> dict[str, int]:
    """A new group's counts: every state 0."""
    return dict.fromkeys(STATES, 0)


def counts_of(record: Mapping[str, Any]) -> dict[str, int]:
    """A group record's counts, every state present, none below 0."""
    stored = record.get(CHILDREN_KEY)
    if not isinstance(stored, dict):
        return empty_counts()
    counts = {}
    for state in STATES:
        value = stored.get(state, 0)
        if type(value) is not int or value < 0:  # what the store's own writes never leave
            value = max(int(value), 0) if is_number(value) else 0
        counts[state] = value
    return counts


def status_of_counts(counts: Mapping[str, int], existing: int) -> str | None:
    """The Batch rules: failed if any failed; queued if all queued; completed if all
    completed; cancelled if all finished (some cancelled, none failed); else working.

    None when ``existing`` is 0 (a Batch of missing jobs; a group says queued).
    """
    if existing <= 0:
        return None
    if counts.get("failed", 0):
        return "failed"
    if counts.get("queued", 0) == existing:
        return "queued"
    if counts.get("completed", 0) == existing:
        return "completed"
    if not counts.get("queued", 0) and not counts.get("working", 0):
        return "cancelled"
    return "working"


def roll_up(
    group: Record, old: State | None, new: State | None, *, at: str, history_limit: int
) -> Record:
    """The group's record after one child moved from ``old`` to ``new`` (a new dict).

    ``at`` is the child's write time: it becomes the group's ``updated_at``, and
    stamps ``started_at``, ``finished_at`` and a ``history`` entry when the
    group's own status changes.
    """
    counts = counts_of(group)
    progress = group.get("progress")
    current = float(progress) if is_number(progress) else 0.0
    if old is not None:
        counts[old.status] = max(counts[old.status] - 1, 0)
        current -= old.ratio
    if new is not None:
        counts[new.status] += 1
        current += new.ratio
    total = sum(counts.values())
    status = status_of_counts(counts, total) or "queued"
    merged = dict(group)
    merged[CHILDREN_KEY] = counts
    merged["total"] = total
    # Ratios added and taken away drift by a few ulps: a finished group is exact.
    finished = total and not counts["queued"] and not counts["working"]
    merged["progress"] = total if finished else min(max(current, 0.0), float(total))
    merged["updated_at"] = at
    if status != group.get("status"):
        merged["status"] = status
        if status != "queued" and "started_at" not in group:
            merged["started_at"] = at
        if status in FINISHED_STATES:
            merged["finished_at"] = at
        merged = append_history(merged, status, at, history_limit)
    return merged


#: ``update(job_id, compute)``: read the live record of ``job_id``, store
#: ``compute(old)`` unless it is None (with the ttl ``change.ttl_for`` gives),
#: atomically for that record; return ``(old, new)``, new None when nothing was stored.
Update = Callable[
    [str, Callable[[Record | None], Record | None]], tuple[Record | None, Record | None]
]

#: The keys of a group's record that a move reads when the group's status stays the
#: same (most moves: a child's progress); it then writes back those of STEADY_WRITES.
STEADY_READS: Final = (CHILDREN_KEY, "total", "progress", "status", "parent")
STEADY_WRITES: Final = (CHILDREN_KEY, "total", "progress", "updated_at")

#: ``update_steady(group_id, compute)``: like :data:`Update`, on the live record's
#: STEADY_READS keys only, storing the STEADY_WRITES keys of ``compute(keys)`` into the
#: record (its other keys unchanged); None, with nothing stored, when the record is
#: missing or ``compute`` gives None. Then the whole record's update runs instead.
UpdateSteady = Callable[[str, Callable[[Record], Record | None]], tuple[Record, Record] | None]

#: ``update_progress(group_id, before, after, at)``: a child's move that keeps its
#: status (a progress tick, most moves) changes a group's ``progress`` by
#: ``after.ratio - before.ratio`` and nothing else but ``updated_at`` = ``at``, and
#: the group's state then moves its own parent. A store that can apply it to a top
#: group (one without a parent) without reading it gives this: it applies it and
#: returns True when the live record is a top group that counts a child in
#: ``before.status``, exactly as :func:`roll_up` would; else it changes nothing and
#: returns False, and the move runs as usual.
UpdateProgress = Callable[[str, State, State, str], bool]


def write_through(
    update: Update,
    job_id: str,
    change: Change,
    update_steady: UpdateSteady | None = None,
    update_progress: UpdateProgress | None = None,
) -> Written:
    """Apply ``change`` to ``job_id`` and move its groups: the write of a store that
    merges in Python (memory, SQLite, memcached, the caches, Django's database).

    The store calls it inside its lock or transaction, so the whole chain is one
    atomic step; memcached's ``update`` is a CAS per record, atomic per record.
    A store that can write a few keys of a record for less than the whole record
    also gives ``update_steady`` and ``update_progress`` (see :data:`UpdateSteady`,
    :data:`UpdateProgress`).
    """
    old, new = update(job_id, lambda stored: apply_write(stored, change))
    if new is None:
        return Written(applied=False, created=old is None, cancel=pending_cancel(old))
    move_groups(update, old, new, change, update_steady, update_progress)
    return Written(
        applied=True,
        created=old is None,
        cancel=pending_cancel(new),
        queued_at=queued_since(old, new),
    )


def queued_since(old: Record | None, new: Record) -> str | None:
    """When ``old`` became queued, if this write moved it from queued to working
    (see :attr:`Written.queued_at`); None otherwise or when the record cannot tell.

    The newest ``queued`` history entry dates a retry as well as the enqueue. With
    no history kept, ``queued_at`` dates only a first attempt: after a retry it is
    the enqueue's time, which would count the earlier attempts as waiting.
    """
    if old is None or old.get("status") != "queued" or new.get("status") != "working":
        return None
    history = old.get("history")
    if isinstance(history, list):
        for entry in reversed(history):
            if isinstance(entry, dict) and entry.get("status") == "queued":
                at = entry.get("at")
                return at if isinstance(at, str) else None
    queued_at = old.get("queued_at")
    return queued_at if isinstance(queued_at, str) and not old.get("attempts") else None


def move_groups(
    update: Update,
    old: Record | None,
    new: Record,
    change: Change,
    update_steady: UpdateSteady | None = None,
    update_progress: UpdateProgress | None = None,
) -> None:
    """Roll a record's change of state up through its groups, at most MAX_DEPTH levels."""
    parent = new.get("parent")
    if not isinstance(parent, str):
        return  # most writes: no group to move
    before = state_of(old) if old is not None and old.get("parent") == parent else None
    after = state_of(new)
    stamp = new.get("updated_at")
    at = stamp if isinstance(stamp, str) else utc_now_iso()
    for _ in range(MAX_DEPTH):
        if not isinstance(parent, str) or before == after:
            return
        if (
            update_progress is not None
            and before is not None
            and after is not None
            and before.status == after.status
            and update_progress(parent, before, after, at)
        ):
            return  # a top group's progress moved: nothing further to move
        mover = _mover(before, after, at, change.history_limit)
        moved = None if update_steady is None else update_steady(parent, _steady(mover))
        group_old, group_new = update(parent, mover) if moved is None else moved
        if group_new is None:
            return
        parent = group_new.get("parent")
        if not isinstance(parent, str):
            return  # a top group: nothing further to move
        before, after = state_of(group_old), state_of(group_new)


def _mover(
    before: State | None, after: State | None, at: str, history_limit: int
) -> Callable[[Record | None], Record | None]:
    """What a group's record becomes when one child moves (None leaves a non-group alone)."""

    def roll(group: Record | None) -> Record | None:
        if group is None or not is_group(group):
            return None
        return roll_up(group, before, after, at=at, history_limit=history_limit)

    return roll


def _steady(mover: Callable[[Record | None], Record | None]) -> Callable[[Record], Record | None]:
    """``mover`` where the group's status stays; None where it changes (or there is no
    group), which the whole record's update then handles."""

    def roll(keys: Record) -> Record | None:
        moved = mover(keys)
        return moved if moved is not None and moved.get("status") == keys.get("status") else None

    return roll
