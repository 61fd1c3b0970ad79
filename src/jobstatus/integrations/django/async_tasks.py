"""Async tasks: their status writes never block the task's event loop (SPEC 3).

Django runs an async task through asgiref's ``async_to_sync``: each call gets
an event loop of its own, in a thread of its own, which ends with the task,
and the signal receivers run outside it, before and after. A store call made
from the task's code on that loop would stop it for as long as the store
takes. Binding the job's writer to that loop would not do either: its last
write may still be under way when ``asyncio.run`` cancels what is left, and
the store would open a new connection for every task.

So the job of an async task writes on one event loop per process that lives
as long as the process, run by a daemon thread: the task's code, through the
plain API (``status["k"] = v``, ``progress.increment()``) or the async one
(``aupdate``, ``aflush``), only hands its changes over, and the receivers wait
there for the lifecycle writes (queued, working, the end), as they do for a
sync task, so the record says so at the same moment.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping
from typing import Any

from ..._job import Job
from ..._writer import AsyncWriter


class _WritesLoop:
    """One event loop per process, run by a daemon thread started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0

    def get(self) -> asyncio.AbstractEventLoop:
        """The process's writes loop (a forked child starts its own)."""
        with self._lock:
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="jobstatus-django-writes", daemon=True
                )
                thread.start()
                self._loop, self._pid = loop, os.getpid()
            return self._loop


writes_loop = _WritesLoop()


class _AnyLoopWriter(AsyncWriter):
    """An AsyncWriter on the writes loop whose async methods may be awaited on any loop.

    The task awaits ``aflush()`` (and ``aupdate()``, which calls it) on its own
    loop; the flush itself must run on the writer's.
    """

    async def aflush(self) -> None:
        if asyncio.get_running_loop() is self.loop:
            await super().aflush()
            return
        flushed = asyncio.run_coroutine_threadsafe(AsyncWriter.aflush(self), self.loop)
        await asyncio.wrap_future(flushed)


class AsyncTaskJob(Job):
    """The Job of an async task: every write runs on the process's writes loop."""

    async_writer = _AnyLoopWriter

    def __init__(
        self,
        job_id: str,
        *,
        name: str | None = None,
        options: Mapping[str, Any] | None = None,
        parent: object = None,
    ) -> None:
        self._loop = writes_loop.get()
        super().__init__(job_id, name=name, options=options, parent=parent, loop=self._loop)

    def written(self) -> None:
        """Wait until everything handed over so far is written (from outside the loop).

        Raises:
            StoreError: a write failed and ``on_store_error`` is ``"raise"``.
        """
        asyncio.run_coroutine_threadsafe(self.writer.aflush(), self._loop).result()
