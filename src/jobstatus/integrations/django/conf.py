"""The ``JOBSTATUS`` setting: global options, per-task options, and the web routes' rules.

    JOBSTATUS = {
        "STORE": "django-db://default",   # any store URL, a Store, or a client
        "EXPIRES_IN": 3600,
        "FINISHED_EXPIRES_IN": None,
        "THROTTLE_INTERVAL": 0.5,
        "INCLUDES": ["status", "exception"],
        "ON_STORE_ERROR": "warn",
        "HEARTBEAT_INTERVAL": 15,               # a running task writes at least this often
        "STALE_AFTER": 60,                      # Status.is_stale past this silence
        "TASKS": {"shop.tasks.export": {"THROTTLE_INTERVAL": 2}},
        "AUTHORIZE": "shop.auth.may_see_job",   # web: (request, job_id, record) -> bool
        "EXPOSE": [],                           # web: private keys to serve anyway
        "PUBLIC": False,                        # web: listing and dashboard for everyone
    }

Every key is optional; a key that is not given leaves jobstatus' own default
(for the store: ``JOBSTATUS_STORE`` or the embedded SQLite file).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..._config import validate_options
from ..._errors import ConfigurationError

OPTION_KEYS = {
    "EXPIRES_IN": "expires_in",
    "FINISHED_EXPIRES_IN": "finished_expires_in",
    "THROTTLE_INTERVAL": "throttle_interval",
    "INCLUDES": "includes",
    "ON_STORE_ERROR": "on_store_error",
    "HEARTBEAT_INTERVAL": "heartbeat_interval",
    "STALE_AFTER": "stale_after",
}
OTHER_KEYS = {"STORE", "TASKS", "AUTHORIZE", "EXPOSE", "PUBLIC"}
PRIVATE_KEYS = frozenset({"serialized_job", "exception"})

Authorize = Callable[[Any, str, Mapping[str, Any]], bool]


@dataclass(frozen=True)
class DjangoSettings:
    """``settings.JOBSTATUS``, checked."""

    configure: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    authorize: Authorize | None = None
    expose: frozenset[str] = frozenset()
    public: bool = False


def _options(given: Mapping[str, Any], where: str) -> dict[str, Any]:
    unknown = set(given) - set(OPTION_KEYS)
    if unknown:
        raise ConfigurationError(
            f"unknown key {', '.join(sorted(map(repr, unknown)))} in {where}; "
            f"known: {', '.join(sorted(OPTION_KEYS))}"
        )
    return validate_options({OPTION_KEYS[key]: value for key, value in given.items()})


def parse(raw: object) -> DjangoSettings:
    """Check ``settings.JOBSTATUS`` (a dict, or None when absent).

    Raises:
        ConfigurationError: not a dict, an unknown key, or a bad value, naming it.
    """
    if raw is None:
        return DjangoSettings()
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"settings.JOBSTATUS must be a dict, not {type(raw).__name__}")
    unknown = set(raw) - set(OPTION_KEYS) - OTHER_KEYS
    if unknown:
        known = sorted(set(OPTION_KEYS) | OTHER_KEYS)
        raise ConfigurationError(
            f"unknown key {', '.join(sorted(map(repr, unknown)))} in settings.JOBSTATUS; "
            f"known: {', '.join(known)}"
        )
    options = _options({key: raw[key] for key in raw if key in OPTION_KEYS}, "JOBSTATUS")
    if "STORE" in raw:
        options["store"] = raw["STORE"]
    tasks_raw = raw.get("TASKS") or {}
    if not isinstance(tasks_raw, Mapping):
        raise ConfigurationError("JOBSTATUS['TASKS'] must map task paths to option dicts")
    tasks = {
        str(path): _options(given, f"JOBSTATUS['TASKS'][{path!r}]")
        for path, given in tasks_raw.items()
    }
    expose = frozenset(raw.get("EXPOSE") or ())
    if not expose <= PRIVATE_KEYS:
        raise ConfigurationError(
            f"JOBSTATUS['EXPOSE'] may hold {', '.join(sorted(PRIVATE_KEYS))}; got {sorted(expose)}"
        )
    public = raw.get("PUBLIC", False)
    if not isinstance(public, bool):
        raise ConfigurationError(f"JOBSTATUS['PUBLIC'] must be True or False, not {public!r}")
    return DjangoSettings(options, tasks, _authorize(raw.get("AUTHORIZE")), expose, public)


def _authorize(value: object) -> Authorize | None:
    if value is None or callable(value):
        return value
    if isinstance(value, str):
        from django.utils.module_loading import import_string

        try:
            found: Authorize = import_string(value)
        except ImportError as exc:
            raise ConfigurationError(f"JOBSTATUS['AUTHORIZE'] {value!r}: {exc}") from exc
        return found
    raise ConfigurationError("JOBSTATUS['AUTHORIZE'] must be a callable or its dotted path")


_current = DjangoSettings()


def current() -> DjangoSettings:
    """The settings read at startup (or after an ``override_settings``)."""
    return _current


def load() -> DjangoSettings:
    """Read ``settings.JOBSTATUS``, remember it and apply its global options."""
    global _current
    from django.conf import settings

    from ..._config import configure

    parsed = parse(getattr(settings, "JOBSTATUS", None))
    if parsed.configure:
        configure(**parsed.configure)
    _current = parsed
    return parsed
