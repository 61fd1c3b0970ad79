"""The subscription base classes, as a store of your own subclasses them."""

from __future__ import annotations

import asyncio

import pytest

from jobstatus import StoreError
from jobstatus._record import Record
from jobstatus.stores.base import AsyncSubscription, Subscription


class _RefusedSubscription(Subscription):
    """Its server refuses the subscribe, after the connection is open."""

    def __init__(self) -> None:
        self.opened = self.closed = 0

    def listen(self) -> None:
        self.opened += 1
        raise StoreError("the server refused SUBSCRIBE")

    def wait(self, timeout: float) -> list[Record] | None:
        return None

    def close(self) -> None:
        self.closed += 1


class _SlowSubscription(AsyncSubscription):
    """Its server never confirms the subscribe: entering waits until cancelled."""

    def __init__(self) -> None:
        self.opened = self.closed = 0
        self.listening = asyncio.Event()

    async def listen(self) -> None:
        self.opened += 1
        self.listening.set()
        await asyncio.Event().wait()

    async def wait(self, timeout: float) -> list[Record] | None:
        return None

    async def aclose(self) -> None:
        self.closed += 1


def test_a_subscribe_that_fails_closes_what_it_opened_before_the_error_goes_on() -> None:
    subscription = _RefusedSubscription()
    with pytest.raises(StoreError, match="refused"), subscription:
        pytest.fail("entered a subscription whose subscribe failed")
    assert (subscription.opened, subscription.closed) == (1, 1)


def test_a_stream_closed_while_it_subscribes_closes_what_the_subscribe_opened() -> None:
    """The web hub cancels a job's subscription when its last stream closes, maybe
    while it still subscribes: ``__aexit__`` never runs for an ``__aenter__`` cut short."""
    subscription = _SlowSubscription()

    async def main() -> None:
        async def follow() -> None:
            async with subscription:
                pytest.fail("entered a subscription the server never confirmed")

        task = asyncio.create_task(follow())
        await subscription.listening.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert (subscription.opened, subscription.closed) == (1, 1)


def test_entering_and_leaving_listens_and_closes_once() -> None:
    class Counted(_RefusedSubscription):
        def listen(self) -> None:
            self.opened += 1

    subscription = Counted()
    with subscription:
        assert (subscription.opened, subscription.closed) == (1, 0)
    assert (subscription.opened, subscription.closed) == (1, 1)
