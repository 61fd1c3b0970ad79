"""Fuzz what validation lets through: whatever passes it, a job's record ends readable.

Validation refuses what no record can hold (NaN, lone surrogates, ints too long to
read back) before any I/O. What passes it can still be refused by one store
after the fact: a record over memcached's item limit, a sum of increments that
overflows. Here a real running job writes values and increments that pass
validation (long strings, huge and tiny floats, huge ints, nesting up to the
limit, many keys, unicode edge cases) on every store case, and its final record
must be readable, serialize with ``to_json()``, be ``completed``, and hold every
key the store did not refuse, as the job last set it.

Each find is kept as an explicit ``@example``.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import jobstatus
from jobstatus import WriteRefused
from jobstatus._record import MAX_NESTING, RESERVED_KEYS, Change
from jobstatus._writer import store_error_log
from jobstatus.stores import Store, Written

EDGE_TEXT = [
    "",
    "\x00",
    "a\x00b",
    "\u2028\u2029",
    "\ufeff",
    "\uffff",
    "\U0010ffff",
    "\ud7ff\ue000",
    "e\u0301",
    "🙂👨‍👩‍👧",
    '\\"\\u0000',
    "\x1b[31m",
    "\u202etxt",
]
EDGE_NUMBERS = [
    0,
    -0.0,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    1e308,
    0.1,
    2**53 + 1,
    2**63,
    -(2**63) - 1,
    10**300,
    2**14000 - 1,  # the longest int a record holds: 4,215 digits
]

texts = st.sampled_from(EDGE_TEXT) | st.text(max_size=30)
numbers = (
    st.sampled_from(EDGE_NUMBERS)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(2**70), max_value=2**70)
)
# Sizes about memcached's 1 MiB item limit, alone and added up over several keys.
long_texts = st.sampled_from([10_000, 300_000, 500_000, 1_040_000, 1_100_000]).map(
    lambda n: "x" * n
)
leaves = st.none() | st.booleans() | numbers | texts


def _nest(leaf: Any, depth: int, as_dict: bool) -> Any:
    for _ in range(depth):
        leaf = {"k": leaf} if as_dict else [leaf]
    return leaf


deep = st.builds(_nest, leaves, st.integers(0, MAX_NESTING - 1), st.booleans())
values = (
    leaves
    | deep
    | long_texts
    | st.lists(leaves, max_size=6)
    | st.dictionaries(texts, leaves, max_size=6)
)
keys = (
    st.sampled_from([t for t in EDGE_TEXT if t] + ["k" * 5_000]) | st.text(min_size=1, max_size=40)
).filter(lambda key: key not in RESERVED_KEYS)
many_keys = st.integers(0, 300).map(lambda n: {f"key-{i}": i for i in range(n)})
# Int amounts up to the largest one increment() takes, a float's range: held ones
# summing past it, then a float, once raised OverflowError into the job.
LARGEST_INT_AMOUNT = int(sys.float_info.max)
amounts = (
    st.sampled_from(
        [1, 0.5, 1e308, -1e308, 5e-324, 2**1023, -(2**1023), LARGEST_INT_AMOUNT, 10**300, 1e-300]
    )
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.integers(min_value=-LARGEST_INT_AMOUNT, max_value=LARGEST_INT_AMOUNT)
)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("update"), st.dictionaries(keys, values, min_size=1, max_size=4)),
        st.tuples(st.just("update"), many_keys),
        st.tuples(st.just("increment"), amounts),
        st.tuples(
            st.just("progress"),
            st.floats(0, 1e308) | st.integers(0, 2**1023),
        ),
    ),
    min_size=1,
    max_size=8,
)

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples on every run: no test passes by chance
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


class Attempts:
    """What each write to the store carried and whether the store took it."""

    def __init__(self, store: Store) -> None:
        self.last: dict[str, tuple[bool, Any]] = {}  # key -> (taken, value set)
        write, awrite = store.write, store.awrite

        def recording(job_id: str, change: Change) -> Written | None:
            try:
                written = write(job_id, change)
            except WriteRefused:
                self._saw(change, taken=False)
                raise
            self._saw(change, taken=True)
            return written

        async def arecording(job_id: str, change: Change) -> Written | None:
            try:
                written = await awrite(job_id, change)
            except WriteRefused:
                self._saw(change, taken=False)
                raise
            self._saw(change, taken=True)
            return written

        store.write = recording  # type: ignore[method-assign]
        store.awrite = arecording  # type: ignore[method-assign]
        self._restore = lambda: (delattr(store, "write"), delattr(store, "awrite"))

    def _saw(self, change: Change, *, taken: bool) -> None:
        for key, value in change.set.items():
            self.last[key] = (taken, value)

    def close(self) -> None:
        self._restore()


@FUZZ
@given(ops=operations, asynchronous=st.booleans())
# Issue 13 item 3: an overflowing sum was stored as Infinity (memory, Redis), raised
# into the job (SQLite, memcached) or left it working (PostgreSQL).
@example(ops=[("progress", 1e308), ("increment", 1e308)], asynchronous=False)
# An async job folded its held 1e308 into the set 1e308 before any store saw it: a
# set of inf, which every store failed on and the writer kept sending.
@example(ops=[("progress", 1e308), ("increment", 1e308)], asynchronous=True)
# memcached's item limit, alone and over several keys (issue 13 item 2).
@example(ops=[("update", {"big": "x" * 1_100_000, "small": 1})], asynchronous=False)
@example(
    ops=[("update", {"a": "x" * 500_000}), ("update", {"b": "x" * 500_000, "c": "small"})],
    asynchronous=False,
)
# Found here: two int increments of 2**1023 stored progress 2**1024, which every
# reader's ratio, percent or rate of it then failed on (OverflowError).
@example(ops=[("increment", 2**1023), ("increment", 2**1023)], asynchronous=False)
@example(ops=[("increment", 2**1023), ("increment", 2**1023)], asynchronous=True)
# Found here: held int increments past a float's range, then a float increment,
# raised OverflowError into a throttled or async job (the held sum's +=).
@example(
    ops=[("increment", 2**1023), ("increment", 2**1023), ("increment", 1.0)], asynchronous=False
)
@example(
    ops=[("increment", 2**1023), ("increment", 2**1023), ("increment", 1.0)], asynchronous=True
)
# The longest ints a record can hold, which Python can still read back as text.
@example(ops=[("update", {"n": 2**14000 - 1, "m": -(2**14000 - 1)})], asynchronous=False)
@example(ops=[("update", {"\x00k\\": {"": ["\x00", "\u2028"]}})], asynchronous=False)
def test_whatever_passes_validation_ends_in_a_readable_completed_record(
    store: Store, ops: list[tuple[str, Any]], asynchronous: bool
) -> None:
    store_error_log.reset()
    attempts = Attempts(store)
    expected: dict[str, Any] = {}

    def run(status: jobstatus.Status) -> str:
        for kind, payload in ops:
            if kind == "update":
                status.update(payload, force=True)
                expected.update(payload)
            elif kind == "increment":
                status.progress.increment(payload)
            else:
                status.progress.current = payload
        return status.job_id

    @jobstatus.track
    def job() -> str:
        return run(jobstatus.current())

    @jobstatus.track
    async def ajob() -> str:
        return run(jobstatus.current())  # queued: the loop's writer task writes it

    try:
        # Returns normally: nothing a store refuses fails the job.
        job_id = asyncio.run(ajob()) if asynchronous else job()
    finally:
        attempts.close()
    final = jobstatus.get(job_id)
    record = json.loads(final.to_json())  # serializes, and as the stored record
    assert record == final.to_dict()
    assert final.status == "completed", record
    progress = record.get("progress", 0)
    assert isinstance(progress, (int, float)) and math.isfinite(progress)
    for key, value in expected.items():
        taken, sent = attempts.last.get(key, (False, None))
        if taken:
            assert record[key] == sent == value, key
        else:
            assert record.get(key) != value or key not in record, key
