"""Each store declares what it can do beyond the basics, and does what it declares."""

from __future__ import annotations

import pytest

import jobstatus
from jobstatus import NotSupportedError
from jobstatus._record import Change
from jobstatus.stores import Listing, Store
from jobstatus.stores.base import Capability, Migration, Purge, Push

from ..stores import FakeClock, StoreCase


def test_the_store_declares_the_capabilities_of_its_case(case: StoreCase, store: Store) -> None:
    declared = {kind for kind in (Listing, Push, Purge, Migration) if store.supports(kind)}
    expected = {
        kind
        for kind, has in [
            (Listing, case.lists),
            (Push, case.pushes),
            (Purge, case.purges),
            (Migration, case.migrates),
        ]
        if has
    }
    assert declared == expected
    for kind in (Listing, Push, Purge, Migration):
        assert (kind.of(store) is store) == (kind in expected)
    assert store.pushes == case.pushes


def test_a_store_lists_exactly_when_it_declares_listing(store: Store) -> None:
    jobstatus.Job("listed").started()
    if Listing.of(store) is None:
        with pytest.raises(NotSupportedError):
            jobstatus.recent()
    else:
        assert [status.job_id for status in jobstatus.recent()] == ["listed"]


def test_a_store_that_purges_removes_what_expired(
    case: StoreCase, store: Store, clock: FakeClock
) -> None:
    purging = Purge.of(store)
    if purging is None:
        pytest.skip(f"{case.name} has nothing to purge: it drops expired records itself")
    store.write("old", Change(set={"status": "completed"}, ttl=10, finished_ttl=10))
    store.write("kept", Change(set={"status": "completed"}, ttl=600, finished_ttl=600))
    clock.advance(60)
    assert purging.purge() == 1
    assert store.read_many(["old", "kept"]) == [None, {"status": "completed"}]
    assert purging.purge() == 0


def test_a_store_that_migrates_can_do_it_again_and_again(store: Store) -> None:
    migration = Migration.of(store)
    if migration is None:
        pytest.skip("the store needs no migration")
    migration.migrate()
    migration.migrate()
    store.write("after", Change(set={"n": 1}))
    assert store.read("after") == {"n": 1}


def test_a_capability_of_no_store_is_offered_by_none(store: Store) -> None:
    class Teleport(Capability):
        """A capability no store has."""

    assert Teleport.of(store) is None and not store.supports(Teleport)
