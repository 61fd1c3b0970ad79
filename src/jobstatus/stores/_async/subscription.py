"""The subscription interface and its polling default, each written once.

The async classes in :mod:`jobstatus.stores._async.subscription` are the source;
the sync ones in :mod:`jobstatus.stores._sync.subscription` are generated from
them by ``scripts/unasync.py``. Import both from :mod:`jobstatus.stores.base`.
"""

from __future__ import annotations

import abc
import asyncio
import time  # noqa: F401 - the sync side, generated from this module, sleeps with it
from types import TracebackType

from ..._record import Record
from .._backoff import Backoff


class AsyncSubscription(abc.ABC):
    """Wakes a reader when a record may have changed. Use as a context manager."""

    @abc.abstractmethod
    async def wait(self, timeout: float) -> list[Record] | None:
        """Return when a change may have happened, or after ``timeout`` seconds.

        A store that publishes each change's record returns those records, in
        order (so a watcher sees every state); None means "read the store again".
        """

    def changed(self) -> None:  # noqa: B027 - only polling keeps state
        """Tell the subscription the reader just saw a change (polling resets its backoff)."""

    async def listen(self) -> None:  # noqa: B027 - only pushed subscriptions subscribe
        """Start listening now, unless listening already (entering the context does)."""

    async def aclose(self) -> None:  # noqa: B027 - only pushed subscriptions hold a connection
        """Stop listening."""

    async def __aenter__(self) -> AsyncSubscription:
        try:
            await self.listen()
        except BaseException:
            # __aexit__ runs only once __aenter__ has returned: a subscribe cut short
            # (a stream closed meanwhile, a timeout) closes what it opened.
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncPollingSubscription(AsyncSubscription):
    """The default: sleep with backoff, since the store cannot say when it changes."""

    def __init__(self) -> None:
        self._backoff = Backoff()

    async def wait(self, timeout: float) -> list[Record] | None:
        await asyncio.sleep(self._backoff.next(timeout))
        return None

    def changed(self) -> None:
        self._backoff.reset()
