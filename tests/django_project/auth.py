"""The test project's AUTHORIZE hook: a job whose ``owner`` is "someone else" is hidden."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def may_read(request: Any, job_id: str, record: Mapping[str, Any]) -> bool:
    return record.get("owner") != "someone else"
