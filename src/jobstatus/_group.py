"""Groups, the API: ``jobstatus.group()`` and the checks on a job's ``parent``.

How children's writes move a group's record is in :mod:`jobstatus._rollup`;
this module makes groups and checks, before a child's first write, that its
parent is a group that exists, that the job is not its own ancestor, and that
nesting stays within :data:`~jobstatus._rollup.MAX_DEPTH` levels.

A group's ancestors never change (a record's ``parent`` is set when it is made),
so each process remembers the chains it has read: a group of 100,000 children
costs one read for the checks, not 100,000.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict

from ._config import settings, store_or_default
from ._group_async import AsyncAncestryChecks
from ._group_sync import AncestryChecks
from ._record import Change, Record, check_name, utc_now_iso, validate_job_id
from ._rollup import MAX_DEPTH, empty_counts, is_group
from ._status import Status, aread_status, read_status
from .stores.base import Store, acall_store, call_store

Chain = tuple[str, ...]  # a group and its ancestors, nearest first

CACHED_CHAINS = 10_000


class _Walk:
    """The climb from a parent to the top of its groups, without I/O: the sync and
    the async check both drive it (``next_id``, then ``took`` with its snapshot)."""

    def __init__(self, ancestry: Ancestry, store: Store, parent_id: str) -> None:
        self._ancestry, self._store = ancestry, store
        self.parent_id = parent_id
        self.chain: list[str] = []
        self._next: str | None = parent_id

    def next_id(self) -> str | None:
        """The next group to read, or None when the chain is known to its top."""
        while self._next is not None:
            if self._next in self.chain or len(self.chain) > MAX_DEPTH:
                return None  # a cycle in stored records, or deeper than allowed anyway
            cached = self._ancestry.cached(self._store, self._next)
            if cached is None:
                return self._next
            self.chain.extend(cached)
            self._next = None
        return None

    def took(self, snapshot: Status) -> None:
        """The group just read: check it and climb to its parent."""
        if not snapshot.exists:
            raise ValueError(
                f"group {snapshot.job_id!r} does not exist (make it with jobstatus.group())"
            )
        if not is_group(snapshot._record):
            raise ValueError(
                f"job {snapshot.job_id!r} is not a group; make parents with jobstatus.group()"
            )
        self.chain.append(snapshot.job_id)
        up = snapshot._record.get("parent")
        self._next = up if isinstance(up, str) else None


class Ancestry(AncestryChecks, AsyncAncestryChecks):
    """Checks parents, remembering each group's chain of ancestors per store."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chains: OrderedDict[tuple[int, str], Chain] = OrderedDict()

    # check and acheck, which read the store, are AncestryChecks' (_group_async.py)

    def _walk(self, store: Store, parent: object, job_id: str | None) -> _Walk:
        """The climb from ``parent``, once the checks that need no I/O passed."""
        return _Walk(self, store, _early(parent, job_id))

    def cached(self, store: Store, group_id: str) -> Chain | None:
        """The chain of ``group_id`` (itself first) if this process knows it."""
        with self._lock:
            chain = self._chains.get((id(store), group_id))
            if chain is not None:
                self._chains.move_to_end((id(store), group_id))
            return chain

    def _checked(self, store: Store, parent_id: str, chain: list[str], job_id: str | None) -> str:
        if job_id is not None and job_id in chain:
            raise ValueError(
                f"job {job_id!r} cannot be its own ancestor: it is above {parent_id!r}"
            )
        if len(chain) > MAX_DEPTH:
            raise ValueError(
                f"groups nest at most {MAX_DEPTH} levels deep; a job under {parent_id!r} "
                f"would have {len(chain)} groups above it"
            )
        with self._lock:
            for start in range(len(chain)):
                self._chains[(id(store), chain[start])] = tuple(chain[start:])
            while len(self._chains) > CACHED_CHAINS:
                self._chains.popitem(last=False)
        return parent_id

    def forget(self) -> None:
        """Forget every chain (for tests)."""
        with self._lock:
            self._chains.clear()


def _early(parent: object, job_id: str | None) -> str:
    """The checks on a parent that need no I/O."""
    parent_id = parent.job_id if isinstance(parent, Status) else validate_job_id(parent)
    if parent_id == job_id:
        raise ValueError(f"job {job_id!r} cannot be its own parent")
    return parent_id


ancestry = Ancestry()


def group(
    name: str | None = None,
    group_id: str | None = None,
    parent: object = None,
    *,
    store: object = None,
) -> Status:
    """Make a group: one id for many jobs, whose counts and progress roll up.

    Children join with ``parent=`` (``submit``, ``asubmit``, ``track``, ``Job``
    and every integration). The group's record keeps ``children`` (counts per
    state), ``progress`` (the children's ratios summed; a finished child counts
    1) and ``total`` (how many children), and its status follows the Batch
    rules; reading it is one read, whatever its size. Groups nest.

    Making a group whose id exists already (as a group) changes nothing and
    returns it, so publishers may race to make the same group.

    Args:
        name: shown as the group's ``name``.
        group_id: the group's id (default: a new random one).
        parent: the group this one belongs to (an id or a Status).
        store: the store (URL, Store or client); the configured one by default.

    Raises:
        TypeError, ValueError: a malformed name or id; a parent that does not exist,
            is not a group or would make a cycle; nesting deeper than 8 levels;
            ``group_id`` naming a job that is not a group.
        StoreError: the store failed.

    Example::

        g = jobstatus.group(name="import")
        for path in paths:
            jobstatus.submit(pool, load, path, parent=g)
        jobstatus.get(g.job_id).progress.percent
    """
    chosen = store_or_default(store)
    job_id, change = _group_change(chosen, name, group_id, parent)
    written = call_store(chosen.write, job_id, change)
    snapshot = read_status(chosen, job_id)
    return _made(snapshot, written is None or written.applied)


async def agroup(
    name: str | None = None,
    group_id: str | None = None,
    parent: object = None,
    *,
    store: object = None,
) -> Status:
    """Async twin of :func:`group`."""
    chosen = store_or_default(store)
    job_id = new_group_id() if group_id is None else validate_job_id(group_id)
    if parent is not None:
        await ancestry.acheck(chosen, parent, job_id)
    job_id, change = _group_change(chosen, name, job_id, parent)
    written = await acall_store(chosen.awrite, job_id, change)
    snapshot = await aread_status(chosen, job_id)
    return _made(snapshot, written is None or written.applied)


def new_group_id() -> str:
    """A fresh random group id (32 hex characters)."""
    return uuid.uuid4().hex


def _group_change(
    store: Store, name: str | None, group_id: str | None, parent: object
) -> tuple[str, Change]:
    job_id = new_group_id() if group_id is None else validate_job_id(group_id)
    fields: Record = {"status": "queued", "children": empty_counts(), "progress": 0, "total": 0}
    if name is not None:
        fields["name"] = check_name(name)
    if parent is not None:
        fields["parent"] = ancestry.check(store, parent, job_id)
    now = utc_now_iso()
    fields.update(queued_at=now, updated_at=now)
    options = settings.options
    change = Change(
        set=fields,
        ttl=options.expires_in,
        finished_ttl=options.finished_ttl,
        guard="absent",
        events=(("queued", now),),
        history_limit=options.history_limit,
    )
    return job_id, change


def _made(snapshot: Status, created: bool) -> Status:
    if not created and not is_group(snapshot._record):
        raise ValueError(f"job {snapshot.job_id!r} exists and is not a group")
    return snapshot
