"""Key naming for stores whose keys cannot hold every id as it is (memcached, caches).

An id that is short plain ASCII without spaces is kept readable under
``<prefix>i:``; any other id is hashed with SHA-256 under ``<prefix>h:``. The two
namespaces cannot meet, so no two ids ever share a key.
"""

from __future__ import annotations

import hashlib
import re

_PLAIN = re.compile(r"[!-~]{1,200}")  # printable ASCII, no space, short enough


def safe_cache_key(prefix: str, job_id: str) -> str:
    """A memcached-safe key for ``job_id`` (at most 250 bytes for a short prefix)."""
    if _PLAIN.fullmatch(job_id):
        return f"{prefix}i:{job_id}"
    digest = hashlib.sha256(job_id.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{prefix}h:{digest}"
