"""Where status records are kept. See :mod:`jobstatus.stores.base` for the interface."""

from ._registry import resolve_store, store_from_client, store_from_url
from .base import (
    AsyncSubscription,
    Capability,
    Listing,
    Migration,
    Purge,
    Push,
    Store,
    Subscription,
    Written,
)
from .cache import CacheStore
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = [
    "AsyncSubscription",
    "CacheStore",
    "Capability",
    "Listing",
    "MemoryStore",
    "Migration",
    "Purge",
    "Push",
    "SQLiteStore",
    "Store",
    "Subscription",
    "Written",
    "resolve_store",
    "store_from_client",
    "store_from_url",
]
