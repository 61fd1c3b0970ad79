"""The parent checks that read the store, written once for both sides.

``_group_async.py`` is the source and scripts/unasync.py generates
``_group_sync.py`` from it; :class:`jobstatus._group.Ancestry` is made of both mixins.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._status import aread_status

if TYPE_CHECKING:
    from ._group import _Walk
    from .stores.base import Store


class AsyncAncestryChecks:
    """:meth:`~jobstatus._group.Ancestry.acheck`: a parent checked without blocking the loop."""

    # sync: """:meth:`~jobstatus._group.Ancestry.check`: a parent checked."""

    if TYPE_CHECKING:  # what the checks use of Ancestry

        def _walk(self, store: Store, parent: object, job_id: str | None) -> _Walk: ...
        def _checked(
            self, store: Store, parent_id: str, chain: list[str], job_id: str | None
        ) -> str: ...

    async def acheck(self, store: Store, parent: object, job_id: str | None) -> str:
        """Async twin of :meth:`check`."""
        # sync: """The parent's id, after checking it (reads the store only for unknown groups).
        # sync:
        # sync: Raises:
        # sync:     TypeError, ValueError: a malformed id; a parent that does not exist or
        # sync:         is not a group; the job its own ancestor; nesting too deep.
        # sync:     StoreError: the store failed.
        # sync: """
        walk = self._walk(store, parent, job_id)
        while (group_id := walk.next_id()) is not None:
            walk.took(await aread_status(store, group_id))
        return self._checked(store, walk.parent_id, walk.chain, job_id)
