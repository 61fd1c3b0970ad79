"""configure(), store URLs and the default store."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

import jobstatus
from jobstatus import ConfigurationError
from jobstatus._config import settings
from jobstatus.stores import CacheStore, MemoryStore, SQLiteStore


def test_unknown_option_names_it() -> None:
    with pytest.raises(ConfigurationError, match="'expire_in'"):
        jobstatus.configure(expire_in=10)


def test_unknown_includes_entry_names_it() -> None:
    with pytest.raises(ConfigurationError, match="'traceback'"):
        jobstatus.configure(includes={"status", "traceback"})
    with pytest.raises(ConfigurationError, match="includes"):
        jobstatus.configure(includes="status")


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("expires_in", 0),
        ("expires_in", -5),
        ("expires_in", "10"),
        ("expires_in", float("nan")),
        ("throttle_interval", -1),
        ("finished_expires_in", True),
        ("on_store_error", "ignore"),
    ],
)
def test_bad_option_values(option: str, value: object) -> None:
    with pytest.raises(ConfigurationError, match=option):
        jobstatus.configure(**{option: value})


def test_configure_changes_only_what_it_is_given() -> None:
    jobstatus.configure(expires_in=timedelta(minutes=2), throttle_interval=0.5)
    jobstatus.configure(includes={"status", "exception"})
    options = settings.options
    assert options.expires_in == 120 and options.throttle_interval == 0.5
    assert options.includes == {"status", "exception"}
    assert options.finished_ttl == 120
    jobstatus.configure(finished_expires_in=10)
    assert settings.options.finished_ttl == 10 and settings.options.expires_in == 120


def test_track_options_are_validated_when_declared() -> None:
    with pytest.raises(ConfigurationError, match="'throttle'"):
        jobstatus.track(throttle=1)


def test_store_urls(tmp_path: Path) -> None:
    assert jobstatus.store_from_url("memory://") is jobstatus.store_from_url("memory://")
    assert jobstatus.store_from_url("memory://") is MemoryStore.shared()
    relative = jobstatus.store_from_url("sqlite:///rel/status.db")
    assert isinstance(relative, SQLiteStore) and str(relative.path) == "rel/status.db"
    absolute = jobstatus.store_from_url(f"sqlite:///{tmp_path}/abs.db")
    assert isinstance(absolute, SQLiteStore) and absolute.path == tmp_path / "abs.db"
    with pytest.raises(ConfigurationError, match="unknown store URL"):
        jobstatus.store_from_url("mongodb://localhost")
    with pytest.raises(ConfigurationError, match="unknown store URL"):
        jobstatus.store_from_url("not a url")
    with pytest.raises(ConfigurationError, match="memory://"):
        jobstatus.store_from_url("sqlite:///:memory:")
    with pytest.raises(ConfigurationError, match="timeuot"):
        jobstatus.store_from_url(f"sqlite:///{tmp_path}/x.db?timeuot=1")


def test_unknown_url_does_not_echo_a_password() -> None:
    with pytest.raises(ConfigurationError) as info:
        jobstatus.store_from_url("mongodb://user:hunter2@localhost")
    assert "hunter2" not in str(info.value)


def test_a_missing_driver_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import jobstatus\n"
        "try:\n    jobstatus.store_from_url('redis://localhost')\n"
        "except jobstatus.ConfigurationError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'jobstatus[redis]'" in out.stdout


def test_importing_jobstatus_and_its_stores_imports_no_integration() -> None:
    # The scheme table names the Django stores by module path: they are imported when
    # a django-* URL is resolved, so a store never depends upward on an integration.
    code = (
        "import sys\n"
        "import jobstatus, jobstatus.stores\n"
        "jobstatus.store_from_url('memory://')\n"
        "print([m for m in sys.modules if m.startswith('jobstatus.integrations')])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"


def test_any_object_with_get_set_delete_is_a_store() -> None:
    from cachelib import SimpleCache

    jobstatus.configure(store=SimpleCache())
    store = settings.store()
    assert isinstance(store, CacheStore) and not store.atomic
    jobstatus.get("c")["x"] = 1
    assert jobstatus.get("c")["x"] == 1
    with pytest.raises(ConfigurationError, match="cannot use a int"):
        jobstatus.configure(store=42)


def test_a_django_cache_is_a_store() -> None:
    from .django_project.harness import ensure_django

    ensure_django()
    from django.core.cache import caches

    jobstatus.configure(store=caches["default"])
    jobstatus.get("dj")["x"] = [1, 2]
    jobstatus.get("dj2")["x"] = 3
    assert jobstatus.Batch(["dj", "dj2", "nope"]).counts["missing"] == 3  # no status key yet
    assert [s.get("x") for s in jobstatus.Batch(["dj", "dj2"]).statuses] == [[1, 2], 3]


def test_default_store_is_sqlite_from_the_environment(tmp_path: Path) -> None:
    store = settings.store()
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "default.db"


def test_default_store_without_environment_is_under_the_user_cache_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JOBSTATUS_STORE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    store = settings.store()
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "cache" / "jobstatus" / "jobstatus.db"
    jobstatus.get("x")["y"] = 1
    assert oct(os.stat(store.path).st_mode & 0o777) == "0o600"


def test_public_names_are_exactly_all() -> None:
    public = {name for name in dir(jobstatus) if not name.startswith("_")}
    modules = {"stores", "integrations", "web", "cli", "metrics"}
    assert public - modules == set(jobstatus.__all__)
    for name in [
        "configure",
        "get",
        "aget",
        "current",
        "track",
        "submit",
        "asubmit",
        "Batch",
        "recent",
        "store_from_url",
        "Store",
        "JobStatusError",
        "ConfigurationError",
        "StoreError",
        "WriteRefused",
        "NoCurrentJob",
        "NotSupportedError",
    ]:
        assert name in jobstatus.__all__
    assert issubclass(jobstatus.NoCurrentJob, LookupError)
    assert issubclass(jobstatus.WriteRefused, jobstatus.StoreError)
    for error in (
        jobstatus.ConfigurationError,
        jobstatus.StoreError,
        jobstatus.NoCurrentJob,
        jobstatus.NotSupportedError,
    ):
        assert issubclass(error, jobstatus.JobStatusError)
