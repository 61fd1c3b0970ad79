"""jobstatus: what your background jobs are doing, whichever queue runs them.

Example::

    import jobstatus

    @jobstatus.track
    def export(rows):
        status = jobstatus.current()
        status.progress.total = len(rows)
        for row in rows:
            status.progress.increment()

    s = jobstatus.get(job_id)
    s.status, s.progress.percent
"""

from ._batch import Batch
from ._cancel import acancel, cancel
from ._config import configure
from ._errors import (
    Cancelled,
    ConfigurationError,
    JobStatusError,
    NoCurrentJob,
    NotSupportedError,
    StoreError,
    WriteRefused,
)
from ._group import agroup, group
from ._job import Job, asubmit, current, submit, track
from ._read import acounts, aget, arecent, counts, get, recent
from ._status import Progress, Status
from ._version import __version__ as __version__
from .stores import Store, store_from_url

__all__ = [
    "Batch",
    "Cancelled",
    "ConfigurationError",
    "Job",
    "JobStatusError",
    "NoCurrentJob",
    "NotSupportedError",
    "Progress",
    "Status",
    "Store",
    "StoreError",
    "WriteRefused",
    "acancel",
    "acounts",
    "aget",
    "agroup",
    "arecent",
    "asubmit",
    "cancel",
    "configure",
    "counts",
    "current",
    "get",
    "group",
    "recent",
    "store_from_url",
    "submit",
    "track",
]
