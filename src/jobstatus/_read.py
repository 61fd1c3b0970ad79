"""Reading statuses: ``get``, ``aget``, ``recent``, ``arecent``, ``counts`` and ``acounts``.

The async functions are the source, in ``_read_async.py``; scripts/unasync.py
writes the sync ones (``_read_sync.py``) from them. The checks of their
arguments are in ``_query.py``.
"""

from __future__ import annotations

from ._query import MAX_RECENT
from ._read_async import acounts, aget, arecent
from ._read_sync import counts, get, recent

__all__ = ["MAX_RECENT", "acounts", "aget", "arecent", "counts", "get", "recent"]
