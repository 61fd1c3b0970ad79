"""A plan's store steps and an event stream's loop, written once for both sides: the
ASGI app's (:mod:`jobstatus.web.app`) and the WSGI adapters' (:mod:`jobstatus.web.sync`).

``_perform_async.py`` is the source and scripts/unasync.py generates
``_perform_sync.py`` from it. What differs between the two endpoints stays with
them: how a hook's verdict is had (awaited or not), and where a stream's changes
come from (the hub, or a subscription).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from .._batch import Batch
from .._cancel import acancel_job
from .._read import acounts, arecent
from .._record import Record
from .._status import aread_status
from ..stores.base import Store, acall_store, listing_of
from . import plan
from .core import WebOptions, arender_metrics

Changes = dict[str, Record | None]  # the latest record of each job a stream watches
Ask = Callable[..., Awaitable[bool]]  # an endpoint's ask(hook_name, request, *args)


async def aperform_step(store: Store, step: plan.StoreStep, ask: Ask) -> Any:
    """Do one step of a plan that reads or writes ``store``, or asks a hook (``ask``)."""
    if isinstance(step, plan.ReadStatus):
        return await aread_status(store, step.job_id)
    if isinstance(step, plan.ReadMany):
        return await store.aread_many(step.job_ids)
    if isinstance(step, plan.Allowed):
        return await ask(step.hook, step.request, step.job_id, step.record)
    if isinstance(step, plan.IsOperator):
        return await ask("operator", step.request)
    if isinstance(step, plan.RefreshBatch):
        return await Batch(step.job_ids, store=store).arefresh()
    if isinstance(step, plan.ListRecent):
        return await arecent(
            step.status,
            step.limit,
            step.before,
            name=step.name,
            prefix=step.prefix,
            store=store,
        )
    if isinstance(step, plan.CountJobs):
        return await acounts(store=store)
    if isinstance(step, plan.ListChildren):
        return await acall_store(listing_of(store).achild_ids, step.job_id)
    if isinstance(step, plan.CancelJob):
        return await acancel_job(store, step.job_id, step.reason)
    if isinstance(step, plan.RenderMetrics):
        return await arender_metrics(store, step.accept)
    return await acall_store(store.adelete, step.job_id)  # plan.DeleteJob, the last StoreStep


async def aevents(
    answer: plan.StreamAnswer,
    reads: AsyncGenerator[Changes, None],
    request: Any,
    options: WebOptions,
    ask: Ask,
) -> AsyncGenerator[str, None]:
    """The texts of an event stream: what ``answer.stream`` answers to ``answer.first``,
    then to each of ``reads`` (closed with the stream). ``request`` sees a job when the
    ``authorize`` hook says so (``ask``); a read that fails ends the stream."""
    stream, changes = answer.stream, answer.first
    async with contextlib.aclosing(reads):
        while True:
            for job_id, record in changes.items():
                if stream.watches(job_id):
                    seen = record is not None and (
                        options.authorize is None or await ask("authorize", request, job_id, record)
                    )
                    text = stream.event(job_id, record if seen else None)
                    if text:
                        yield text
            if stream.over:
                return
            keepalive = stream.keepalive()
            if keepalive:
                yield keepalive
            try:
                changes = await anext(reads)
            except Exception:  # a broken store ends the stream; the client reconnects
                return
