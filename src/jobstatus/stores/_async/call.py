"""Calling a store: any failure but StoreError and NotSupportedError becomes a StoreError.

Written once, in ``_async/call.py``; scripts/unasync.py generates ``_sync/call.py``
from it. Import both functions from :mod:`jobstatus.stores.base`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..._errors import NotSupportedError, StoreError

T = TypeVar("T")


async def acall_store(method: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Async twin of :func:`call_store`."""
    # sync: """Call a store method; any failure but StoreError and NotSupportedError becomes a
    # sync: StoreError too."""
    try:
        return await method(*args)
    except (StoreError, NotSupportedError):
        raise
    except Exception as exc:
        raise StoreError(f"the store failed: {type(exc).__name__}: {exc}") from exc
