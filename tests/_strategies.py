"""Hypothesis strategies shared by the property tests and the HTTP fuzz."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st

from jobstatus._record import RESERVED_KEYS

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
"""Any JSON value a record may hold."""

ids = st.text(min_size=0, max_size=600) | st.binary(max_size=20) | st.integers()
"""Whatever a user may pass as a job id: any text (empty, too long), bytes, ints."""

user_keys = st.text(min_size=1, max_size=40).filter(lambda key: key not in RESERVED_KEYS)
"""A key of the application's own data."""


def examples(count: int) -> int:
    """``count`` examples under the deterministic profile, scaled up under ``fuzz``.

    A test's own ``max_examples`` overrides its profile's, so each test states its
    count through this: the profile's count against Hypothesis's default of 100.
    """
    return max(1, count * settings().max_examples // 100)
