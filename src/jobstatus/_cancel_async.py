"""Requesting a cancel, written once for both sides.

``_cancel_async.py`` is the source and scripts/unasync.py generates
``_cancel_sync.py`` from it; :mod:`jobstatus._cancel` holds both, and the delivery
to running jobs.
"""

from __future__ import annotations

import asyncio
import logging

from . import _lifecycle as lifecycle
from ._config import settings, store_or_default
from ._errors import StoreError
from ._record import check_reason, job_id_of
from ._revokers import revokers
from .stores.base import CancelPush, Store, acall_store, listing_of

logger = logging.getLogger("jobstatus")


async def acancel(job_or_id: object, reason: str | None = None, *, store: object = None) -> bool:
    """Async twin of :func:`cancel`."""
    # sync: """Request that a job stop: True for a queued or working job, False otherwise.
    # sync:
    # sync: A queued job never runs its code; a running one raises
    # sync: :class:`jobstatus.Cancelled` at its next progress or status call, and is then
    # sync: recorded ``cancelled``. An unknown or finished job is left unchanged. A
    # sync: group's children are cancelled with it (where the store can list them).
    # sync:
    # sync: Args:
    # sync:     job_or_id: an id, a queue's job object, or a Status.
    # sync:     reason: why (at most 1,000 characters); recorded and raised with ``Cancelled``.
    # sync:     store: the store (URL, Store or client); the configured one by default.
    # sync:
    # sync: Raises:
    # sync:     TypeError, ValueError: a malformed id or reason (before any I/O).
    # sync:     StoreError: the store failed.
    # sync:
    # sync: Example::
    # sync:
    # sync:     if jobstatus.cancel(job_id, reason="the user clicked cancel"):
    # sync:         print("it will stop at its next step")
    # sync: """
    job_id = job_id_of(job_or_id)
    checked = check_reason(reason)
    return await acancel_job(store_or_default(store), job_id, checked)


async def acancel_job(store: Store, job_id: str, reason: str | None) -> bool:
    """Async twin of :func:`cancel_job`."""
    # sync: """Record the request on ``store``, announce it, hand it to the queues' revokers,
    # sync: and cancel a group's children."""
    change = lifecycle.cancel_requested(settings.options, check_reason(reason))
    written = await acall_store(store.awrite, job_id, change)
    if written is None:  # a store that cannot say whether the guard held: read it back
        if not lifecycle.cancel_landed(await acall_store(store.aread, job_id), change):
            return False
    elif not written.applied:
        return False
    pushing = CancelPush.of(store)
    if pushing is not None:
        await acall_store(pushing.aannounce_cancel, job_id, change.set["cancel"])
    if revokers:
        await _arevoke_recorded(store, job_id)
    for child in await _achildren(store, job_id):
        await acancel_job(store, child, reason)
    return True


async def _achildren(store: Store, job_id: str) -> list[str]:
    try:
        listing = listing_of(store)
    except Exception:  # noqa: BLE001 - a store that cannot list has no children to find
        return []
    return await acall_store(listing.achild_ids, job_id)


_UNREAD = "job %r: its cancel is recorded, but not read back for its queue's revoke: %s"


async def _arevoke_recorded(store: Store, job_id: str) -> None:
    """Hand the request just recorded on ``job_id`` to the revokers, with the record
    read back; a store error here is only logged (the request is recorded: the
    worker's start hook still refuses the job)."""
    try:
        record = await acall_store(store.aread, job_id)
    except StoreError as exc:
        logger.warning(_UNREAD, job_id, exc)
        return
    if record is not None:
        await asyncio.to_thread(revokers.revoke, job_id, record)  # they may block: off the loop
        # sync: revokers.revoke(job_id, record)
