"""The options every store checks the same way: its timeout and its key prefix.

A store checks them in its constructor, before anything else, so a wrong value
is a :class:`~jobstatus.ConfigurationError` naming it, never a failure on the
first call.
"""

from __future__ import annotations

import math

from .._errors import ConfigurationError

MEMCACHED_KEY_PREFIX_LENGTH = 48  # with an id of 200 characters, a key stays within 250 bytes


def check_timeout(timeout: object) -> float:
    """The timeout in seconds, as a float.

    Raises:
        ConfigurationError: ``timeout`` is not a number (a bool, a str, None),
            or not positive, or not finite: every call to a store is bounded.
    """
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0 < timeout < math.inf  # NaN fails this too
    ):
        raise ConfigurationError(
            "timeout must be a positive number of seconds, and finite: every call to "
            f"the store is bounded; got {timeout!r}"
        )
    return float(timeout)


def check_prefix(
    prefix: object,
    *,
    max_length: int,
    memcached_safe: bool = False,
    forbid: str = "",
    because: str = "",
) -> str:
    """The key prefix, checked.

    Args:
        prefix: the value given.
        max_length: the most characters it may have.
        memcached_safe: only printable ASCII without spaces (memcached's keys).
        forbid: characters it must not contain, ``because`` says why.

    Raises:
        ConfigurationError: not a str, too long, or holding a character the store
            cannot put in a key (control characters always).
    """
    if not isinstance(prefix, str):
        raise ConfigurationError(f"prefix must be a str, not {type(prefix).__name__}: {prefix!r}")
    if len(prefix) > max_length:
        raise ConfigurationError(
            f"prefix is {len(prefix)} characters long; the limit is {max_length}"
        )
    if not prefix.isprintable():
        raise ConfigurationError(f"prefix must not contain control characters: {prefix!r}")
    if memcached_safe and not all(33 <= ord(char) <= 126 for char in prefix):
        raise ConfigurationError(
            f"prefix must be printable ASCII without spaces (memcached's keys); got {prefix!r}"
        )
    bad = [char for char in forbid if char in prefix]
    if bad:
        raise ConfigurationError(
            f"prefix {prefix!r} must not contain {' or '.join(map(repr, bad))}: {because}"
        )
    return prefix
