"""Every store checks its timeout (and its key prefix) the same way, before any I/O."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pytest

from jobstatus import ConfigurationError
from jobstatus.stores import Store, resolve_store, store_from_client, store_from_url

from ..stores import StoreCase

BAD_TIMEOUTS = [0, -1, -0.5, math.inf, -math.inf, math.nan, "5", True, None, [5]]


def _built(case: StoreCase, tmp_path: Path, ns: str, **options: object) -> Store:
    source = case.source_of(tmp_path, ns)
    if source is None:
        pytest.skip(f"{case.name} takes no options: its calls never wait")
    if case.name.startswith("django"):
        from ..django_project.harness import ensure_django

        ensure_django()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a per-process or non-atomic cache: known here
        if isinstance(source, str):
            return store_from_url(source, **options)
        return store_from_client(source, **options)


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS, ids=repr)
def test_a_timeout_that_is_no_positive_finite_number_is_refused(
    case: StoreCase, tmp_path: Path, ns: str, timeout: object
) -> None:
    with pytest.raises(ConfigurationError, match="timeout must be a positive number of seconds"):
        _built(case, tmp_path, ns, timeout=timeout)


def test_a_good_timeout_is_kept_as_seconds(case: StoreCase, tmp_path: Path, ns: str) -> None:
    store = _built(case, tmp_path, ns, timeout=2)
    assert store.timeout == 2.0 and isinstance(store.timeout, float)
    store.close()


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        (3, "prefix must be a str"),
        ("a\nb", "control characters"),
        ("p" * 201, "the limit is"),
    ],
    ids=["not-a-str", "control-character", "too-long"],
)
def test_a_prefix_no_key_can_start_with_is_refused(
    case: StoreCase, tmp_path: Path, ns: str, prefix: object, message: str
) -> None:
    if not case.prefixed:
        pytest.skip(f"{case.name} has no key prefix")
    with pytest.raises(ConfigurationError, match=message):
        _built(case, tmp_path, ns, prefix=prefix)


def test_a_timeout_in_the_url_is_checked_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="finite"):
        resolve_store(f"sqlite:///{tmp_path / 'inf.db'}?timeout=inf")
