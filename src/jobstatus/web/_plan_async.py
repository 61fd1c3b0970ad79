"""The loop that carries a plan out, written once for both sides: the ASGI app's
and the WSGI adapters'.

``_plan_async.py`` is the source and scripts/unasync.py generates
``_plan_sync.py`` from it; import both loops from :mod:`jobstatus.web.plan`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeVar

# The loop needs nothing of the steps and answers (jobstatus.web.plan's Step and
# Result), and so imports nothing of the module that defines them.
Step = TypeVar("Step")
Result = TypeVar("Result")


async def arun(
    plan: Generator[Step, Any, Result],
    perform: Callable[[Step], Awaitable[Any]],
) -> Result:
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
