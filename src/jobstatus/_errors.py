"""The exceptions jobstatus raises.

::

    JobStatusError
     ├── ConfigurationError      bad option, unknown store URL, missing driver
     ├── StoreError              the store failed; the driver's error is __cause__
     │    └── WriteRefused       the store refused a change for good (too large, a sum
     │                           that overflows): sending it again cannot succeed
     ├── NotSupportedError       the store cannot do it (listing on memcached)
     ├── NoCurrentJob            also a LookupError: current() outside a job
     └── Cancelled               raised inside a job whose cancel was requested

Bad values (non-JSON data, malformed ids) raise the built-in ``TypeError`` and
``ValueError``, since that is what Python users test for.
"""

from __future__ import annotations


class JobStatusError(Exception):
    """Base class of every error jobstatus raises on purpose."""


class ConfigurationError(JobStatusError):
    """An option, store URL or driver is wrong or missing."""


class StoreError(JobStatusError):
    """The store could not be reached or answered with an error.

    The driver's own exception is kept as ``__cause__``.
    """


class WriteRefused(StoreError):
    """The store refused a change for good: sending the same change again cannot succeed.

    A value larger than the store can hold (memcached's item limit), a sum of
    increments that would not be a finite number, a value the server rejects
    (a PostgreSQL data error), a full SQLite database. Nothing of the change
    was applied. Inside a job, the writer then writes what can be written and
    drops the refused keys (see ``on_store_error``); a timeout or a dropped
    connection is a plain :class:`StoreError` instead, and its change is sent again.
    """


class NotSupportedError(JobStatusError):
    """The configured store cannot do what was asked (for example, listing)."""


class NoCurrentJob(JobStatusError, LookupError):
    """``jobstatus.current()`` was called outside a running job."""


class Cancelled(JobStatusError):
    """Raised inside a running job, at its next progress or status call, once a
    cancel was requested (``jobstatus.cancel(job_id)``); the job is then recorded
    ``cancelled``, never ``failed``, and its queue does not retry it.

    It is an ``Exception`` (a :class:`JobStatusError`), not a ``BaseException``
    like ``asyncio.CancelledError``, on purpose: every queue's worker treats an
    ``Exception`` from a task as that task's end and goes on, where a
    ``BaseException`` stops Celery's pool processes and Dramatiq's and Huey's worker
    threads. Code that catches ``Exception`` and goes on does not escape the
    cancel: each later progress or status call raises again, and when the job
    returns it is still recorded ``cancelled``.

    Attributes:
        job_id: the cancelled job.
        reason: the reason given with the request, or None.
    """

    def __init__(self, job_id: str, reason: str | None = None) -> None:
        self.job_id = job_id
        self.reason = reason
        because = f": {reason}" if reason else ""
        super().__init__(f"job {job_id!r} was cancelled{because}")

    def __reduce__(self) -> tuple[type[Cancelled], tuple[str, str | None]]:
        return (type(self), (self.job_id, self.reason))  # survives a process pool's pickling
