"""The loop that carries a plan out, written once for both sides: the ASGI app's
and the WSGI adapters'.

``_plan_async.py`` is the source and scripts/unasync.py generates
``_plan_sync.py`` from it; import both loops from :mod:`jobstatus.web.plan`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .plan import Plan, Result, Step


async def arun(plan: Plan, perform: Callable[[Step], Awaitable[Any]]) -> Result:
    """The async twin of :func:`run`: the same loop, awaiting each step."""
    # sync: """Carry a plan out with blocking I/O: each step's result, or error, goes back into it."""
    try:
        step = next(plan)
        while True:
            try:
                result = await perform(step)
            except Exception as exc:
                step = plan.throw(exc)
            else:
                step = plan.send(result)
    except StopIteration as done:
        answer: Result = done.value
        return answer
    finally:
        plan.close()  # a plan left half-way (a cancelled request) gives its slot back
