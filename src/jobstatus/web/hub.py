"""One reader of the store per process, fanned out to every event stream.

A thousand browsers watching jobs must not mean a thousand store
subscriptions. The hub keeps the set of watched job ids and one task that
reads them all together (``aread_many``: a few round trips for thousands of
ids) every ``poll_interval`` seconds, and hands each change to the streams
that watch that job. Streams of the same job share everything; a slow stream
only ever holds the latest record of each job it watches.

On a store that pushes (Redis pub/sub, PostgreSQL LISTEN/NOTIFY), the first
``push_jobs`` watched jobs also get one store subscription each, shared by
all their streams, so their changes arrive at once instead of at the next
read; the periodic read stays as the safety net.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from .._record import Record
from ..stores.base import Push, Store

log = logging.getLogger("jobstatus.web")

_UNSEEN = object()
PUSH_SLICE = 30.0  # seconds a push subscription waits before it reads the job anyway


class Listener:
    """What one event stream receives: the latest record of each job it watches."""

    __slots__ = ("job_ids", "_pending", "_wake")

    def __init__(self, job_ids: Iterable[str]) -> None:
        self.job_ids = tuple(job_ids)
        self._pending: dict[str, Record | None] = {}
        self._wake = asyncio.Event()

    def push(self, job_id: str, record: Record | None) -> None:
        """Hold ``record`` (None: the job is gone) until the stream takes it."""
        self._pending[job_id] = record
        self._wake.set()

    async def changes(self, timeout: float) -> dict[str, Record | None]:
        """The records that changed since the last call; empty after ``timeout`` seconds."""
        if not self._pending:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except asyncio.TimeoutError:
                return {}
        pending, self._pending = self._pending, {}
        self._wake.clear()
        return pending


class Hub:
    """Watches jobs for every stream of one process, with a single reader task.

    Args:
        store: the store to read.
        poll_interval: seconds between two reads of all watched jobs.
    """

    def __init__(self, store: Store, *, poll_interval: float = 0.2, push_jobs: int = 32) -> None:
        self.store = store
        self.poll_interval = poll_interval
        self.push_jobs = push_jobs if store.supports(Push) else 0
        self._listeners: dict[str, set[Listener]] = {}
        self._last: dict[str, object] = {}
        self._task: asyncio.Task[None] | None = None
        self._pushers: dict[str, asyncio.Task[None]] = {}
        self._stopping: set[asyncio.Task[None]] = set()  # cancelled, still closing
        self.reads = 0

    @property
    def watched(self) -> int:
        """How many distinct jobs are watched now."""
        return len(self._listeners)

    @property
    def listening(self) -> int:
        """How many streams are listening now."""
        return len({id(listener) for group in self._listeners.values() for listener in group})

    @property
    def subscriptions(self) -> int:
        """How many store subscriptions are open now: following a job, or still closing."""
        return sum(not task.done() for task in (*self._pushers.values(), *self._stopping))

    def listen(self, job_ids: Iterable[str]) -> Listener:
        """Start delivering changes of ``job_ids``; call :meth:`forget` when done."""
        listener = Listener(job_ids)
        loop = asyncio.get_running_loop()
        for job_id in listener.job_ids:
            self._listeners.setdefault(job_id, set()).add(listener)
            pusher = self._pushers.get(job_id)
            if pusher is not None and (pusher.done() or pusher.get_loop() is not loop):
                del self._pushers[job_id]  # left over from a loop that has ended
                pusher = None
            if pusher is None and len(self._pushers) < self.push_jobs:
                self._pushers[job_id] = loop.create_task(self._follow_pushes(job_id))
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            self._task = loop.create_task(self._run())
        return listener

    def forget(self, listener: Listener) -> None:
        """Stop delivering to ``listener``; a job nobody watches is no longer read."""
        for job_id in listener.job_ids:
            group = self._listeners.get(job_id)
            if group is None:
                continue
            group.discard(listener)
            if not group:
                del self._listeners[job_id]
                self._last.pop(job_id, None)
                pusher = self._pushers.pop(job_id, None)
                if pusher is not None:
                    pusher.cancel()
                    self._stopping.add(pusher)
                    pusher.add_done_callback(self._stopping.discard)

    async def aclose(self) -> None:
        """Stop reading and following every job, and wait until each subscription is closed.

        Await it before the event loop ends (the app's shutdown does): a job's
        subscription, cancelled when its last stream closed, may still be closing
        its store connection, and a loop that ends first leaves it open. Streams
        still listening get changes again at their next watch.
        """
        loop = asyncio.get_running_loop()
        tasks = [*self._pushers.values(), *self._stopping]
        if self._task is not None:
            tasks.append(self._task)
        self._pushers.clear()
        self._stopping.clear()  # a task of an ended loop would never call back
        self._task = None
        pending = {task for task in tasks if task.get_loop() is loop}  # others' loops ended
        while pending:
            # Again until each has ended: redis-py's cluster client can swallow a cancel
            # that lands while it connects, and the task would wait on for its slice.
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.1)

    async def _run(self) -> None:
        while self._listeners:
            job_ids = list(self._listeners)
            try:
                records = await self.store.aread_many(job_ids)
            except Exception as exc:  # keep serving: the next round may succeed
                log.warning("jobstatus.web: reading watched jobs failed: %s", exc)
                records = None
            self.reads += 1
            if records is not None:
                self._deliver(job_ids, records)
            await asyncio.sleep(self.poll_interval)

    async def _follow_pushes(self, job_id: str) -> None:
        try:
            async with self.store.asubscribe(job_id) as subscription:
                while job_id in self._listeners:
                    pushed = await subscription.wait(PUSH_SLICE)
                    record = pushed[-1] if pushed else await self.store.aread(job_id)
                    subscription.changed()
                    self._deliver([job_id], [record])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the periodic read still serves this job
            log.warning("jobstatus.web: following pushes of a job failed: %s", exc)
        finally:
            if self._pushers.get(job_id) is asyncio.current_task():
                del self._pushers[job_id]

    def _deliver(self, job_ids: list[str], records: list[Record | None]) -> None:
        for job_id, record in zip(job_ids, records, strict=True):
            group = self._listeners.get(job_id)
            if not group or self._last.get(job_id, _UNSEEN) == record:
                continue
            self._last[job_id] = record
            for listener in group:
                listener.push(job_id, record)
