"""How long a polling reader waits between two reads of a store that cannot push.

50 ms at first, growing by half each time up to 1 s, and back to 50 ms when the
reader saw a change: a job that moves is followed closely, an idle one costs
about one read a second.
"""

from __future__ import annotations

POLL_FIRST = 0.05
POLL_MAX = 1.0
POLL_GROWTH = 1.5


class Backoff:
    """The poll intervals of one reader."""

    def __init__(self) -> None:
        self.interval = POLL_FIRST

    def next(self, timeout: float) -> float:
        """The next wait, at most ``timeout`` (and never negative)."""
        delay = min(self.interval, max(timeout, 0.0))
        self.interval = min(self.interval * POLL_GROWTH, POLL_MAX)
        return delay

    def reset(self) -> None:
        """Start again from the first interval (the reader saw a change)."""
        self.interval = POLL_FIRST
